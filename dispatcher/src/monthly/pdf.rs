//! The monthly report as a printable PDF (A4 landscape), written with
//! the `pdf-writer` crate: a title, the site's shares as bars against the
//! TSA's reference lines, then one table line per grid, each community's
//! subtotal and the site's total, paginated; in Chinese or English.
//!
//! The text is in one embedded font ([`font`](super::font)), subset to
//! the glyphs the document shows, so names print as they are in either
//! language and the text stays extractable (`pdftotext`).

use pdf_writer::types::TextRenderingMode;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::font::EmbeddedFont;
use super::{Figures, MonthlyReport};
use crate::domain::reach::Lang;

const WIDTH: f32 = 842.0;
const HEIGHT: f32 = 595.0;
const MARGIN: f32 = 36.0;
const FONT: Name<'static> = Name(b"F1");
const SIZE: f32 = 8.5;
const LEADING: f32 = 11.5;
/// The name column's width; the figures follow, right-aligned.
const NAME_W: f32 = 160.0;
/// Each figure column's width, in the order of [`cells`].
const COLUMN_W: [f32; 12] = [
    46.0, 46.0, 46.0, 46.0, 46.0, 46.0, 64.0, 46.0, 64.0, 46.0, 64.0, 46.0,
];

/// The words of the document in one language.
struct Words {
    title: &'static str,
    community: &'static str,
    continued: &'static str,
    unassigned: &'static str,
    no_elder: &'static str,
    total: &'static str,
    header: [&'static str; 13],
    bars: [&'static str; 7],
}

const EN: Words = Words {
    title: "Monthly report",
    community: "community",
    continued: "(continued)",
    unassigned: "unassigned",
    no_elder: "(no elder)",
    total: "TOTAL",
    header: [
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
        "%",
    ],
    bars: [
        "answered within 60 s",
        "answered within 180 s",
        "arrived within target",
        "visits done",
        "follow-ups done",
        "devices tested",
        "false alarms",
    ],
};

const ZH: Words = Words {
    title: "月度报告",
    community: "社区",
    continued: "（续）",
    unassigned: "未划分",
    no_elder: "（无老人）",
    total: "合计",
    header: [
        "网格", "老人", "呼叫", "60秒%", "180秒%", "到场%", "误报%", "走访", "%", "回访", "%",
        "测试", "%",
    ],
    bars: [
        "60 秒内接听",
        "180 秒内接听",
        "按时到场",
        "走访完成",
        "回访完成",
        "设备测试通过",
        "误报",
    ],
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

/// The notes under the title: the window and what each share is of.
fn notes(lang: Lang, report: &MonthlyReport) -> [String; 3] {
    let offset = format!(
        "UTC{:+03}:{:02}",
        report.utc_offset_min / 60,
        (report.utc_offset_min % 60).abs()
    );
    let from = report.from.format("%Y-%m-%d %H:%M");
    let to = report.to.format("%Y-%m-%d %H:%M");
    let t = &report.targets;
    match lang {
        Lang::En => [
            format!("Site time {offset}; from {from} to {to} (UTC)."),
            format!(
                "Calls answered within 60 s and 180 s, of all calls (TSA reference {} % and {} %); arrival within {} s, of calls reached on site;",
                t.answered_60s_reference_pct, t.answered_180s_reference_pct, t.arrive_s
            ),
            "false alarms of resolved calls; visits done of visits due; follow-ups done of those due; devices with a passed test call of devices on duty. - : nothing to count.".to_owned(),
        ],
        Lang::Zh => [
            format!("站点时间 {offset}；自 {from} 至 {to}（UTC）。"),
            format!(
                "60 秒、180 秒内接听：占全部呼叫（TSA 参考线 {} % 与 {} %）；{} 秒内到场：占到场的呼叫；",
                t.answered_60s_reference_pct, t.answered_180s_reference_pct, t.arrive_s
            ),
            "误报：占已处理的呼叫；走访、回访：本月到期中已完成的；测试：值守设备中测试呼叫通过的。- ：无可计数。".to_owned(),
        ],
    }
}

/// A line's figures, as the table's columns after the name.
fn cells(f: &Figures) -> [String; 12] {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    [
        f.elders.to_string(),
        f.calls.to_string(),
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
    ]
}

/// One line of the table: a name, then the figures (or the header's
/// words), and whether it is printed bold.
struct Line {
    strong: bool,
    name: String,
    cells: Vec<String>,
}

impl Line {
    fn header(w: &Words) -> Self {
        Self {
            strong: true,
            name: w.header[0].to_owned(),
            cells: w.header[1..].iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn figures(strong: bool, name: String, f: &Figures) -> Self {
        Self {
            strong,
            name,
            cells: cells(f).into(),
        }
    }
}

/// The pages being written and the glyphs they use.
struct Pages {
    font: EmbeddedFont,
    done: Vec<Content>,
    content: Content,
}

impl Pages {
    fn text(&mut self, strong: bool, size: f32, x: f32, y: f32, s: &str) {
        let shown = self.font.encode(s);
        let c = &mut self.content;
        // Bold is the one font filled and stroked: one font file, not two.
        if strong {
            c.set_line_width(size * 0.04);
            c.set_stroke_gray(0.0);
        }
        c.begin_text();
        c.set_font(FONT, size);
        c.set_text_rendering_mode(if strong {
            TextRenderingMode::FillStroke
        } else {
            TextRenderingMode::Fill
        });
        c.next_line(x, y);
        c.show(Str(&shown));
        c.end_text();
    }

    /// A table line: the name clipped to its column, the figures
    /// right-aligned in theirs.
    fn line(&mut self, line: &Line, y: f32) {
        // A heading without figures may use the width of the line.
        let room = if line.cells.is_empty() {
            WIDTH - 2.0 * MARGIN
        } else {
            NAME_W - 6.0
        };
        let name = self.font.clip(&line.name, SIZE, room).to_owned();
        self.text(line.strong, SIZE, MARGIN, y, &name);
        let mut right = MARGIN + NAME_W;
        for (cell, w) in line.cells.iter().zip(COLUMN_W) {
            right += w;
            let x = right - self.font.width(cell, SIZE) - 2.0;
            self.text(line.strong, SIZE, x, y, cell);
        }
    }

    fn next_page(&mut self) {
        self.done
            .push(std::mem::replace(&mut self.content, Content::new()));
    }
}

/// The document, in `lang`.
pub fn to_pdf(report: &MonthlyReport, lang: Lang) -> anyhow::Result<Vec<u8>> {
    let w = words(lang);
    let title = format!(
        "{} {}{}",
        w.title,
        report.month,
        report
            .community
            .as_ref()
            .map(|c| match lang {
                Lang::En => format!(", {} {c}", w.community),
                Lang::Zh => format!("，{}：{c}", w.community),
            })
            .unwrap_or_default()
    );
    let mut lines = vec![Line::header(w)];
    for c in &report.communities {
        let label = if c.community.is_empty() {
            w.unassigned
        } else {
            c.community.as_str()
        };
        lines.push(Line {
            strong: true,
            name: format!("{} {label}", w.community),
            cells: Vec::new(),
        });
        for g in report.grids.iter().filter(|g| g.community == c.community) {
            let name = if g.grid.is_empty() {
                w.no_elder
            } else {
                g.grid.as_str()
            };
            lines.push(Line::figures(false, name.to_owned(), &g.figures));
        }
        lines.push(Line::figures(true, format!("= {label}"), &c.figures));
    }
    lines.push(Line::figures(true, w.total.to_owned(), &report.total));

    let mut pages = Pages {
        font: EmbeddedFont::new()?,
        done: Vec::new(),
        content: Content::new(),
    };
    // The first page: the title, the notes, the chart; then the table.
    // A long community name must not run off the page.
    let title = pages
        .font
        .clip(&title, 14.0, WIDTH - 2.0 * MARGIN)
        .to_owned();
    let mut y = HEIGHT - MARGIN;
    pages.text(true, 14.0, MARGIN, y, &title);
    y -= 18.0;
    for n in &notes(lang, report) {
        pages.text(false, 8.0, MARGIN, y, n);
        y -= 11.0;
    }
    y -= 6.0;
    y = chart(&mut pages, w, lang, report, y);
    y -= 10.0;
    for line in &lines {
        if y < MARGIN {
            pages.next_page();
            y = HEIGHT - MARGIN;
            pages.text(false, 8.0, MARGIN, y, &format!("{title} {}", w.continued));
            y -= LEADING * 1.5;
            pages.line(&Line::header(w), y);
            y -= LEADING;
        }
        pages.line(line, y);
        y -= LEADING;
    }
    pages.next_page();

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let info = Ref::new(4);
    let mut next = 5;
    let mut ids = Vec::new();
    let mut streams = Vec::new();
    for content in pages.done {
        let (page, stream) = (Ref::new(next), Ref::new(next + 1));
        next += 2;
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
        p.resources().fonts().pair(FONT, font);
        p.finish();
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&content.finish(), 6);
        pdf.stream(stream, &packed).filter(Filter::FlateDecode);
    }
    pages.font.write(&mut pdf, font, &mut next)?;
    pdf.document_info(info).title(TextStr(&title));
    Ok(pdf.finish())
}

/// The site's (or community's) shares as bars from 0 to 100 %, the 60 s
/// and 180 s bars with their reference lines. Returns the y below it.
fn chart(pages: &mut Pages, w: &Words, lang: Lang, report: &MonthlyReport, top: f32) -> f32 {
    let t = &report.total;
    let r = &report.targets;
    let values = [
        (t.answered_60s_pct, Some(r.answered_60s_reference_pct)),
        (t.answered_180s_pct, Some(r.answered_180s_reference_pct)),
        (t.arrived_in_target_pct, None),
        (t.visits_done_pct, None),
        (t.follow_ups_done_pct, None),
        (t.test_devices_passed_pct, None),
        (t.false_alarm_pct, None),
    ];
    let label_w = 130.0;
    let bar_w = 360.0;
    let h = 9.0;
    let step = 13.0;
    let x0 = MARGIN + label_w;
    let mut y = top;
    for (label, (value, reference)) in w.bars.iter().zip(values) {
        let base = y - h;
        pages.text(false, 8.0, MARGIN, base + 1.5, label);
        let c = &mut pages.content;
        c.set_fill_gray(0.9);
        c.rect(x0, base, bar_w, h);
        c.fill_nonzero();
        if let Some(v) = value {
            c.set_fill_rgb(0.18, 0.42, 0.67);
            c.rect(x0, base, bar_w * (v as f32 / 100.0).clamp(0.0, 1.0), h);
            c.fill_nonzero();
        }
        if let Some(r) = reference {
            let x = x0 + bar_w * (r as f32 / 100.0);
            c.set_stroke_rgb(0.8, 0.1, 0.1);
            c.set_line_width(1.2);
            c.move_to(x, base - 1.5);
            c.line_to(x, base + h + 1.5);
            c.stroke();
        }
        c.set_fill_gray(0.0);
        let shown = value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} %"));
        let shown = match (reference, lang) {
            (Some(r), Lang::En) => format!("{shown} (reference {r} %)"),
            (Some(r), Lang::Zh) => format!("{shown}（参考线 {r} %）"),
            (None, _) => shown,
        };
        pages.text(false, 8.0, x0 + bar_w + 8.0, base + 1.5, &shown);
        y -= step;
    }
    y
}
