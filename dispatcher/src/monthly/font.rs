//! The one font the PDF report is written in: WenQuanYi Micro Hei
//! (Apache-2.0, `dispatcher/fonts/`), which has Latin and the CJK
//! ideographs, so a Chinese report and a Chinese community name in an
//! English one print as they are.
//!
//! The binary carries the font (3.5 MB, Hangul and the layout tables cut
//! away by `fonts/README.md`'s command); each document embeds only the
//! glyphs it shows, subset by the `subsetter` crate, as a CID font whose
//! `ToUnicode` map keeps the text extractable (`pdftotext`, search, a
//! screen reader).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use anyhow::{Context, anyhow};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Name, Pdf, Rect, Ref, Str};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};

static DATA: &[u8] = include_bytes!("../../fonts/wqy-microhei.ttf");

static FACE: LazyLock<Result<Face<'static>, ttf_parser::FaceParsingError>> =
    LazyLock::new(|| Face::parse(DATA, 0));

const POSTSCRIPT_NAME: &str = "WenQuanYiMicroHei";

/// The glyph ids as CIDs (`Identity`), as the subset's glyphs are numbered.
const IDENTITY: SystemInfo = SystemInfo {
    registry: Str(b"Adobe"),
    ordering: Str(b"Identity"),
    supplement: 0,
};

/// The glyphs one document uses: their new ids, what they say, how wide.
pub struct EmbeddedFont {
    face: &'static Face<'static>,
    remapper: GlyphRemapper,
    /// New glyph id → the character it shows (for `ToUnicode`).
    chars: BTreeMap<u16, char>,
    /// New glyph id → advance in thousandths of the font size.
    widths: BTreeMap<u16, f32>,
}

impl EmbeddedFont {
    pub fn new() -> anyhow::Result<Self> {
        let face = FACE
            .as_ref()
            .map_err(|e| anyhow!("the embedded report font does not parse: {e}"))?;
        Ok(Self {
            face,
            remapper: GlyphRemapper::new(),
            chars: BTreeMap::new(),
            widths: BTreeMap::new(),
        })
    }

    /// The font's glyph for `c`; a character it lacks is shown as `?`.
    fn glyph(&self, c: char) -> (GlyphId, char) {
        match self.face.glyph_index(c) {
            Some(g) => (g, c),
            None => (self.face.glyph_index('?').unwrap_or(GlyphId(0)), '?'),
        }
    }

    fn advance(&self, g: GlyphId) -> f32 {
        let units = f32::from(self.face.units_per_em());
        f32::from(self.face.glyph_hor_advance(g).unwrap_or(0)) * 1000.0 / units
    }

    /// `s` in points at `size`.
    pub fn width(&self, s: &str, size: f32) -> f32 {
        s.chars()
            .map(|c| self.advance(self.glyph(c).0))
            .sum::<f32>()
            * size
            / 1000.0
    }

    /// The longest start of `s` no wider than `max` points at `size`.
    pub fn clip<'s>(&self, s: &'s str, size: f32, max: f32) -> &'s str {
        let mut used = 0.0;
        for (i, c) in s.char_indices() {
            used += self.advance(self.glyph(c).0) * size / 1000.0;
            if used > max {
                return &s[..i];
            }
        }
        s
    }

    /// `s` as the two-byte CIDs a `Tj` shows, noting each glyph for the
    /// subset.
    pub fn encode(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() * 2);
        for c in s.chars() {
            let (g, shown) = self.glyph(c);
            let cid = self.remapper.remap(g.0);
            self.chars.entry(cid).or_insert(shown);
            let width = self.advance(g);
            self.widths.entry(cid).or_insert(width);
            out.extend_from_slice(&cid.to_be_bytes());
        }
        out
    }

    /// Writes the font as `font` (a Type 0 font), with its descendant,
    /// descriptor, subset file and `ToUnicode` map at the next free
    /// references from `next`, which it advances.
    pub fn write(self, pdf: &mut Pdf, font: Ref, next: &mut i32) -> anyhow::Result<()> {
        let mut alloc = || {
            let r = Ref::new(*next);
            *next += 1;
            r
        };
        let (cid_ref, descriptor_ref, file_ref, cmap_ref) = (alloc(), alloc(), alloc(), alloc());

        let subset = subsetter::subset(DATA, 0, &self.remapper)
            .map_err(|e| anyhow!("subsetting the report font: {e:?}"))
            .context("writing the PDF")?;
        // The subset's tag: six capitals that differ with the glyphs in it.
        let tag: String = {
            let h =
                crate::stable_hash::fnv1a(self.remapper.remapped_gids().flat_map(u16::to_le_bytes));
            (0..6)
                .map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8))
                .collect()
        };
        let base = format!("{tag}+{POSTSCRIPT_NAME}");

        pdf.type0_font(font)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid_ref)
            .to_unicode(cmap_ref);

        let mut cid = pdf.cid_font(cid_ref);
        cid.subtype(CidFontType::Type2)
            .base_font(Name(base.as_bytes()))
            .system_info(IDENTITY)
            .font_descriptor(descriptor_ref)
            .cid_to_gid_map_predefined(Name(b"Identity"))
            .default_width(0.0);
        let count = self.remapper.num_gids();
        let all: Vec<f32> = (0..count)
            .map(|g| self.widths.get(&g).copied().unwrap_or(0.0))
            .collect();
        cid.widths().consecutive(0, all);
        drop(cid);

        let face = self.face;
        let scale = |v: i16| f32::from(v) * 1000.0 / f32::from(face.units_per_em());
        let bbox = face.global_bounding_box();
        pdf.font_descriptor(descriptor_ref)
            .name(Name(base.as_bytes()))
            .flags(FontFlags::SYMBOLIC)
            .bbox(Rect::new(
                scale(bbox.x_min),
                scale(bbox.y_min),
                scale(bbox.x_max),
                scale(bbox.y_max),
            ))
            .italic_angle(0.0)
            .ascent(scale(face.ascender()))
            .descent(scale(face.descender()))
            .cap_height(scale(face.capital_height().unwrap_or(face.ascender())))
            .stem_v(80.0)
            .font_file2(file_ref);

        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&subset, 6);
        pdf.stream(file_ref, &packed)
            .filter(Filter::FlateDecode)
            .pair(Name(b"Length1"), subset.len() as i32);

        let mut cmap = UnicodeCmap::new(Name(b"Custom"), IDENTITY);
        for (g, c) in &self.chars {
            cmap.pair(*g, *c);
        }
        pdf.cmap(cmap_ref, &cmap.finish());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_parses_and_has_latin_and_chinese() {
        let font = EmbeddedFont::new().expect("the font");
        for c in "Monthly report 月度报告 吉崩岗社区 0123456789%/=-（）".chars() {
            assert_ne!(font.glyph(c).1, '?', "{c:?}");
        }
        assert_eq!(font.glyph('\u{1F600}').1, '?');
        assert!(font.width("网格", 10.0) > font.width("ab", 10.0));
        assert_eq!(font.clip("网格一二三", 10.0, 21.0), "网格");
    }

    #[test]
    fn a_subset_is_small() {
        let mut font = EmbeddedFont::new().expect("the font");
        font.encode("月度报告 Monthly report 2026-11");
        let mut pdf = Pdf::new();
        let mut next = 10;
        font.write(&mut pdf, Ref::new(9), &mut next).expect("write");
        let bytes = pdf.finish();
        assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
        assert_eq!(next, 14);
    }
}
