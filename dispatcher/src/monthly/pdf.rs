//! The monthly report as a printable PDF (A4 landscape), written with
//! the `pdf-writer` crate: a title, the site's shares as bars against the
//! TSA's reference lines, then one table line per grid, each community's
//! subtotal and the site's total, paginated.
//!
//! The text is in the PDF's built-in Courier (WinAnsi), so it is
//! extractable (`pdftotext`) and needs no font file, but it is **English
//! only**: a character outside Latin-1 (a Chinese community name) is
//! printed as `?`. Embedding a CJK font (and subsetting it) would add
//! megabytes to the binary; the page and the CSV carry the names as
//! they are.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::{Figures, MonthlyReport};

const WIDTH: f32 = 842.0;
const HEIGHT: f32 = 595.0;
const MARGIN: f32 = 36.0;
const FONT: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");
const SIZE: f32 = 8.5;
const LEADING: f32 = 11.5;

/// A line's cells: the name, then the figures as the table's columns.
fn columns(name: &str, f: &Figures) -> String {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    format!(
        "{:<18} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>11} {:>6} {:>11} {:>6} {:>11} {:>6}",
        clip(name, 18),
        f.elders,
        f.calls,
        pct(f.answered_60s_pct),
        pct(f.answered_180s_pct),
        pct(f.arrived_in_target_pct),
        pct(f.false_alarm_pct),
        format!("{}/{}", f.visits_done, f.visits_planned),
        pct(f.visits_done_pct),
        format!("{}/{}", f.follow_ups_done, f.follow_ups_due),
        pct(f.follow_ups_done_pct),
        format!("{}/{}", f.test_devices_passed, f.test_devices),
        pct(f.test_devices_passed_pct),
    )
}

/// The header over [`columns`].
fn header() -> String {
    format!(
        "{:<18} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>11} {:>6} {:>11} {:>6} {:>11} {:>6}",
        "grid",
        "elders",
        "calls",
        "60s%",
        "180s%",
        "arrive%",
        "false%",
        "visits",
        "%",
        "followups",
        "%",
        "tests",
        "%"
    )
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Latin-1 bytes for the WinAnsi font; anything else is `?`.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match u32::from(c) {
            0x20..=0x7e | 0xa0..=0xff => c as u8,
            _ => b'?',
        })
        .collect()
}

/// The document.
pub fn to_pdf(report: &MonthlyReport) -> Vec<u8> {
    let title = format!(
        "Monthly report {}{}",
        report.month,
        report
            .community
            .as_ref()
            .map(|c| format!(", community {c}"))
            .unwrap_or_default()
    );
    let mut lines: Vec<(bool, String)> = vec![(true, header())];
    for c in &report.communities {
        let label = if c.community.is_empty() {
            "unassigned".to_owned()
        } else {
            c.community.clone()
        };
        lines.push((true, format!("community {label}")));
        for g in report.grids.iter().filter(|g| g.community == c.community) {
            let name = if g.grid.is_empty() {
                "(no elder)"
            } else {
                g.grid.as_str()
            };
            lines.push((false, columns(name, &g.figures)));
        }
        lines.push((true, columns(&format!("= {label}"), &c.figures)));
    }
    lines.push((true, columns("TOTAL", &report.total)));

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let mut next = 6;
    let mut pages: Vec<(Ref, Content)> = Vec::new();

    // The first page: the title, the notes, the chart; then the table.
    let mut content = Content::new();
    let mut y = HEIGHT - MARGIN;
    text(&mut content, BOLD, 14.0, MARGIN, y, &title);
    y -= 18.0;
    let notes = [
        format!(
            "Site time UTC{:+03}:{:02}; from {} to {} (UTC).",
            report.utc_offset_min / 60,
            (report.utc_offset_min % 60).abs(),
            report.from.format("%Y-%m-%d %H:%M"),
            report.to.format("%Y-%m-%d %H:%M"),
        ),
        format!(
            "Calls answered within 60 s and 180 s, of all calls (TSA reference {} % and {} %); arrival within {} s, of calls reached on site;",
            report.targets.answered_60s_reference_pct,
            report.targets.answered_180s_reference_pct,
            report.targets.arrive_s
        ),
        "false alarms of resolved calls; visits done of visits due; follow-ups done of those due; devices with a passed test call of devices on duty. - : nothing to count.".to_owned(),
    ];
    for n in &notes {
        text(&mut content, FONT, 8.0, MARGIN, y, n);
        y -= 11.0;
    }
    y -= 6.0;
    y = chart(&mut content, report, y);
    y -= 10.0;
    for (strong, line) in &lines {
        if y < MARGIN {
            pages.push((
                Ref::new(next),
                std::mem::replace(&mut content, Content::new()),
            ));
            next += 1;
            y = HEIGHT - MARGIN;
            text(
                &mut content,
                FONT,
                8.0,
                MARGIN,
                y,
                &format!("{title} (continued)"),
            );
            y -= LEADING * 1.5;
            text(&mut content, BOLD, SIZE, MARGIN, y, &header());
            y -= LEADING;
        }
        text(
            &mut content,
            if *strong { BOLD } else { FONT },
            SIZE,
            MARGIN,
            y,
            line,
        );
        y -= LEADING;
    }
    pages.push((Ref::new(next), content));
    next += 1;

    let mut ids = Vec::new();
    let mut streams = Vec::new();
    for (page, content) in pages {
        let stream = Ref::new(next);
        next += 1;
        ids.push(page);
        streams.push((page, stream, content));
    }
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().copied())
        .count(ids.len() as i32);
    for (page, stream, content) in streams {
        let mut p = pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT));
        p.parent(tree);
        p.contents(stream);
        {
            let mut resources = p.resources();
            let mut fonts = resources.fonts();
            fonts.pair(FONT, font);
            fonts.pair(BOLD, bold);
        }
        p.finish();
        pdf.stream(stream, &content.finish());
    }
    pdf.type1_font(font)
        .base_font(Name(b"Courier"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Courier-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info).title(TextStr(&title));
    pdf.finish()
}

fn text(content: &mut Content, font: Name, size: f32, x: f32, y: f32, s: &str) {
    content.begin_text();
    content.set_font(font, size);
    content.next_line(x, y);
    content.show(Str(&latin1(s)));
    content.end_text();
}

/// The site's (or community's) shares as bars from 0 to 100 %, the 60 s
/// and 180 s bars with their reference lines. Returns the y below it.
fn chart(content: &mut Content, report: &MonthlyReport, top: f32) -> f32 {
    let t = &report.total;
    let bars = [
        (
            "answered within 60 s",
            t.answered_60s_pct,
            Some(report.targets.answered_60s_reference_pct),
        ),
        (
            "answered within 180 s",
            t.answered_180s_pct,
            Some(report.targets.answered_180s_reference_pct),
        ),
        ("arrived within target", t.arrived_in_target_pct, None),
        ("visits done", t.visits_done_pct, None),
        ("follow-ups done", t.follow_ups_done_pct, None),
        ("devices tested", t.test_devices_passed_pct, None),
        ("false alarms", t.false_alarm_pct, None),
    ];
    let label_w = 130.0;
    let bar_w = 360.0;
    let h = 9.0;
    let step = 13.0;
    let x0 = MARGIN + label_w;
    let mut y = top;
    for (label, value, reference) in bars {
        let base = y - h;
        text(content, FONT, 8.0, MARGIN, base + 1.5, label);
        content.set_fill_gray(0.9);
        content.rect(x0, base, bar_w, h);
        content.fill_nonzero();
        if let Some(v) = value {
            content.set_fill_rgb(0.18, 0.42, 0.67);
            content.rect(x0, base, bar_w * (v as f32 / 100.0).clamp(0.0, 1.0), h);
            content.fill_nonzero();
        }
        if let Some(r) = reference {
            let x = x0 + bar_w * (r as f32 / 100.0);
            content.set_stroke_rgb(0.8, 0.1, 0.1);
            content.set_line_width(1.2);
            content.move_to(x, base - 1.5);
            content.line_to(x, base + h + 1.5);
            content.stroke();
        }
        content.set_fill_gray(0.0);
        let shown = value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} %"));
        let shown = match reference {
            Some(r) => format!("{shown} (reference {r} %)"),
            None => shown,
        };
        text(content, FONT, 8.0, x0 + bar_w + 8.0, base + 1.5, &shown);
        y -= step;
    }
    y
}
