//! A walk over a DICOM file's element headers before the DICOM parser sees it.
//!
//! The parser (dicom-rs) trusts two things in a file that a few hundred corrupt bytes can
//! set to anything:
//! - **declared value lengths**: it allocates an element's buffer from its header before
//!   reading it, so a 374-byte file declaring a 2 GiB value took 2.1 GB of memory and a
//!   second before failing (the fuzz target's standing finding, `fuzz/README.md`);
//! - **sequence nesting**: it builds nested sequences by recursion, so 3,000 nested empty
//!   sequences (a 60 kB file) overflowed the thread's stack, which aborts the whole process
//!   and cannot be caught.
//!
//! [`walk_structure`] refuses such files first, reading only headers, the way the parser
//! will: a value that claims more bytes than the file has left (the parser would fail on it
//! anyway, once it had allocated the buffer), or sequences nested deeper than
//! [`MAX_NESTING`]. Where the parser itself would stop (the file ends inside a header, a
//! sequence holds something other than items) the walk stops and leaves the file to it. A
//! length refusal is therefore always a file the parser would have failed on; only the nesting
//! and inflation limits refuse files it could have read. Every rule by which the walk follows
//! dicom-rs 0.10 is a test below, most of them found by fuzzing (`fuzz/README.md`); a new
//! dicom-rs version may read some header differently, which the fuzz target would show.
//!
//! A deflated data set (transfer syntax 1.2.840.10008.1.2.1.99) is inflated first and
//! walked the same way. Inflating is also where a small file becomes a large one (1 MB of
//! deflated zeros is 1 GB), so it stops at [`MAX_DEFLATE_RATIO`] times the compressed size,
//! or [`MIN_INFLATE_LIMIT`] if that is larger.

use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// Deepest nesting of sequences accepted. Real files nest a few levels (structured reports
/// a dozen or so); each level costs the parser a few hundred bytes to kilobytes of stack, so
/// 64 levels stay far below even a small thread stack.
pub(crate) const MAX_NESTING: usize = 64;

/// Largest accepted ratio of a deflated data set's inflated size to its compressed size
/// (beyond [`MIN_INFLATE_LIMIT`]). Deflate shrinks radiographs two to four times, and even
/// an image that is mostly one value some tens of times; a thousand is a decompression bomb.
pub(crate) const MAX_DEFLATE_RATIO: u64 = 64;

/// Inflated size every deflated data set may reach whatever its compressed size: 64 MiB.
pub(crate) const MIN_INFLATE_LIMIT: u64 = 64 << 20;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);

/// Value representations whose explicit-VR header has a 16-bit length; every other VR, and
/// two bytes that are no VR, have two reserved bytes and a 32-bit length (PS3.5 7.1.2, and
/// what dicom-rs reads).
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// [`walk_structure`] without the cut's offset, for the tests.
#[cfg(test)]
pub(crate) fn check_structure(bytes: &[u8]) -> Result<(), String> {
    walk_structure(bytes).map(|_| ())
}

/// Checks the declared value lengths and the sequence nesting of a whole DICOM file (with or
/// without its 128-byte preamble). `Err` holds the reason, for a decoding error's message;
/// `Ok` the byte offset at which the file ends inside an element header, if it does: a file
/// cut short there still parses (the parser stops at the cut), and a required attribute is
/// then missing, which alone would not say the file is truncated.
///
/// The walk reads the file as dicom-rs 0.10 does: the meta group as long as its group length
/// says, element headers by the transfer syntax (an unknown explicit VR as UN with a 32-bit
/// length; implicit VRs from the standard dictionary), a sequence for VR SQ or any undefined
/// length, fragments for encapsulated pixel data.
pub(crate) fn walk_structure(bytes: &[u8]) -> Result<Option<usize>, String> {
    let cut = std::cell::Cell::new(None);
    walk(bytes, &cut)?;
    Ok(cut.get())
}

fn walk(bytes: &[u8], cut: &std::cell::Cell<Option<usize>>) -> Result<(), String> {
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Ok(()); // not a file the parser reads either
    };
    let meta = Walker {
        bytes,
        explicit: true,
        big_endian: false,
        place: "of the file",
        cut,
    };
    // The meta group: (0002,0000) with its length, then elements until that many bytes
    // are read, whatever their group (so the data set starts where the parser starts it).
    let Some(h) = meta.header(start) else {
        cut.set(Some(start));
        return Ok(());
    };
    let Some(group_length) = meta
        .u32_at(h.value)
        .filter(|_| h.tag == (2, 0) && h.length == 4)
    else {
        return Ok(()); // the parser refuses a meta group without it
    };
    let mut pos = h.value + 4;
    let mut read = 0u64;
    let mut syntax = None;
    while read < u64::from(group_length) {
        let Some(mut h) = meta.header(pos) else {
            cut.set(Some(pos));
            return Ok(());
        };
        // The meta reader takes every value whole, numbers or not.
        h.unit = 1;
        if h.length == UNDEFINED {
            return Ok(());
        }
        let end = meta.value_end(&h)?;
        if h.tag == TRANSFER_SYNTAX {
            let text = String::from_utf8_lossy(&bytes[h.value..end]);
            // Trimmed as dicom-object trims it (a tab, too).
            syntax = Some(
                text.trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_string(),
            );
        }
        read += (end - pos) as u64;
        pos = end;
    }
    // A syntax the registry does not know, the parser refuses before reading the data set.
    let Some(syntax) = syntax.and_then(|uid| TransferSyntaxRegistry.get(&uid)) else {
        return Ok(());
    };
    if syntax.is_unsupported() {
        return Ok(()); // the parser refuses it too
    }
    if !syntax.is_codec_free() && !syntax.is_encapsulated_pixel_data() {
        return check_deflated(&bytes[pos..]); // a data set codec: deflate, the only one
    }
    let (explicit, big_endian) = match syntax.uid() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        // Explicit VR little endian, and every encapsulated (compressed) syntax.
        _ => (true, false),
    };
    let walker = Walker {
        bytes,
        explicit,
        big_endian,
        place: "of the file",
        cut,
    };
    walker.data_set(pos, bytes.len(), 0, false).map(|_| ())
}

/// Inflates a deflated data set (explicit VR little endian once inflated), up to the limit
/// above, and walks it.
fn check_deflated(compressed: &[u8]) -> Result<(), String> {
    let limit = (compressed.len() as u64)
        .saturating_mul(MAX_DEFLATE_RATIO)
        .max(MIN_INFLATE_LIMIT);
    let inflated = inflate_as_far_as_it_goes(compressed, limit);
    if inflated.len() as u64 > limit {
        return Err(format!(
            "its deflated data set of {} bytes inflates to more than {limit} bytes (over \
             {MAX_DEFLATE_RATIO} times its size, and over {} MiB): refused as a decompression bomb",
            compressed.len(),
            MIN_INFLATE_LIMIT >> 20
        ));
    }
    let walker = Walker {
        bytes: &inflated,
        explicit: true,
        big_endian: false,
        place: "of the inflated data set",
        // Offsets into the inflated bytes would not say where the file was cut.
        cut: &std::cell::Cell::new(None),
    };
    walker.data_set(0, inflated.len(), 0, false).map(|_| ())
}

/// Inflates raw deflate data up to `limit + 1` bytes, keeping everything that came out
/// before a fault. A corrupt or cut stream still gives the parser what inflated before the
/// fault, and it reads that as far as it goes: a cut stream declaring a 3.7 GB value took
/// 3.7 GB. How much of it the parser sees depends on its read sizes (a `Read` adapter drops
/// the output of the call that fails), so the walk takes all of it: the most it could see.
fn inflate_as_far_as_it_goes(compressed: &[u8], limit: u64) -> Vec<u8> {
    let mut inflater = flate2::Decompress::new(false);
    let mut inflated = Vec::new();
    let mut input = compressed;
    while inflated.len() as u64 <= limit {
        inflated.reserve(1 << 16);
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater.decompress_vec(input, &mut inflated, flate2::FlushDecompress::None);
        let used = (inflater.total_in() - before_in) as usize;
        input = &input[used.min(input.len())..];
        match status {
            Ok(flate2::Status::StreamEnd) | Err(_) => break,
            // No input taken and nothing given: the stream is cut short.
            Ok(_) if used == 0 && inflater.total_out() == before_out => break,
            Ok(_) => {}
        }
    }
    inflated
}

/// Where a walk goes on: `Some(position after the part read)`, or `None` where the parser
/// stops too (the file ends inside a header, a sequence holds something other than items);
/// `Err` is a refusal and its reason.
type Flow = Result<Option<usize>, String>;

struct Walker<'a> {
    bytes: &'a [u8],
    explicit: bool,
    big_endian: bool,
    /// What byte offsets count from, for messages.
    place: &'static str,
    /// Where the bytes end inside an element header, once a walk has found it.
    cut: &'a std::cell::Cell<Option<usize>>,
}

/// An element's header: its tag, whether it opens a sequence by its VR, the size of one
/// number of its value (1 for text and bytes), its declared length and where its value
/// starts.
struct Header {
    tag: (u16, u16),
    sequence: bool,
    unit: u32,
    length: u32,
    value: usize,
    offset: usize,
}

impl Walker<'_> {
    fn u16_at(&self, pos: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(pos..pos.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, pos: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn tag(&self, pos: usize) -> Option<(u16, u16)> {
        Some((self.u16_at(pos)?, self.u16_at(pos + 2)?))
    }

    /// The header at `pos`; `None` when the file ends inside it.
    fn header(&self, pos: usize) -> Option<Header> {
        let tag = self.tag(pos)?;
        // Items and delimiters have no VR, in explicit files too.
        if tag.0 == 0xFFFE || !self.explicit {
            let vr = if tag.0 == 0xFFFE {
                *b"UN"
            } else {
                implicit_vr(tag)
            };
            return Some(Header {
                tag,
                sequence: &vr == b"SQ",
                unit: number_size(&vr),
                length: self.u32_at(pos + 4)?,
                value: pos + 8,
                offset: pos,
            });
        }
        let vr: [u8; 2] = self.bytes.get(pos + 4..pos + 6)?.try_into().ok()?;
        let (length, value) = if SHORT_VRS.contains(&&vr) {
            (u32::from(self.u16_at(pos + 6)?), pos + 8)
        } else {
            // Every other VR, and bytes that are no VR (read as UN).
            (self.u32_at(pos + 8)?, pos + 12)
        };
        Some(Header {
            tag,
            sequence: &vr == b"SQ",
            unit: number_size(&vr),
            length,
            value,
            offset: pos,
        })
    }

    /// The end of a defined-length value as the parser reads it, refusing one that claims
    /// more than the file holds. A value of numbers is read as whole numbers only: 7 bytes
    /// declared as UL are read as one UL of 4, and the next header starts 3 bytes early.
    fn value_end(&self, h: &Header) -> Result<usize, String> {
        let left = self.bytes.len().saturating_sub(h.value);
        let read = h.length - h.length % h.unit;
        if read as usize > left {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {} {} declares a value of {} bytes, but only \
                 {left} follow (truncated or corrupt)",
                h.tag.0, h.tag.1, h.offset, self.place, h.length
            ));
        }
        Ok(h.value + read as usize)
    }

    /// Walks the elements from `pos` to `end`, or to an item delimiter when `in_item` (an
    /// item of undefined length). `depth` counts the sequences around them.
    fn data_set(&self, mut pos: usize, end: usize, depth: usize, in_item: bool) -> Flow {
        while pos < end {
            let Some(h) = self.header(pos) else {
                self.cut.set(Some(pos));
                return Ok(None);
            };
            if h.tag == ITEM_END && !h.sequence {
                if in_item {
                    return Ok(Some(h.value));
                }
                pos = h.value; // outside an item the parser skips it
                continue;
            }
            if h.tag == ITEM || h.tag == SEQUENCE_END {
                // Where an element should be, the parser's reading of an item or a sequence
                // delimiter is not what a walk can follow (it read on into a 3.7 GB claim
                // the walk never reached: the `dicom_plane` fuzz target's find, 2026-12-02).
                return Err(format!(
                    "({:04X},{:04X}), {}, at byte {} {} stands where an element should be \
                     (corrupt)",
                    h.tag.0,
                    h.tag.1,
                    if h.tag == ITEM {
                        "an item"
                    } else {
                        "a sequence delimiter"
                    },
                    h.offset,
                    self.place
                ));
            }
            let next = if h.tag == PIXEL_DATA && h.length == UNDEFINED && !h.sequence {
                self.fragments(h.value)?
            } else if h.sequence || h.length == UNDEFINED {
                if h.length == UNDEFINED {
                    self.items(h.value, self.bytes.len(), depth + 1, &h)?
                } else {
                    self.defined_length_sequence(&h, depth)?
                }
            } else {
                Some(self.value_end(&h)?)
            };
            match next {
                Some(p) => pos = p,
                None => return Ok(None),
            }
        }
        Ok(Some(pos))
    }

    /// The items of a sequence of defined length, which must hold exactly that length: one
    /// that claims more bytes than the file holds is refused as a value would be, and so is
    /// one whose items end elsewhere (a sequence delimiter inside it, an item running past
    /// it). The parser reads on from where the items end, not from the declared end, so a
    /// walk that skipped to the declared end would leave the bytes the parser reads next
    /// unchecked: a declared end past the file once hid an element claiming 3.7 GB, which
    /// the parser then allocated (the `dicom_plane` fuzz target's find, 2026-12-02).
    fn defined_length_sequence(&self, h: &Header, depth: usize) -> Flow {
        let left = self.bytes.len().saturating_sub(h.value);
        if h.length as usize > left {
            return Err(format!(
                "sequence ({:04X},{:04X}) at byte {} {} declares {} bytes, but only {left} \
                 follow (truncated or corrupt)",
                h.tag.0, h.tag.1, h.offset, self.place, h.length
            ));
        }
        let end = h.value + h.length as usize;
        match self.items(h.value, end, depth + 1, h)? {
            Some(p) if p != end => Err(format!(
                "sequence ({:04X},{:04X}) at byte {} {} declares {} bytes, but its items end \
                 {} (corrupt)",
                h.tag.0,
                h.tag.1,
                h.offset,
                self.place,
                h.length,
                if p < end {
                    format!("{} bytes before that", end - p)
                } else {
                    format!("{} bytes past it", p - end)
                }
            )),
            other => Ok(other),
        }
    }

    /// Items from `pos` until `end` or a sequence delimiter; `depth` is the sequence's.
    fn items(&self, mut pos: usize, end: usize, depth: usize, seq: &Header) -> Flow {
        if depth > MAX_NESTING {
            return Err(format!(
                "sequences nested more than {MAX_NESTING} deep (element ({:04X},{:04X}) at byte \
                 {} {}): refused, as the parser would overflow its stack on them",
                seq.tag.0, seq.tag.1, seq.offset, self.place
            ));
        }
        while pos < end {
            let Some(h) = self.header(pos) else {
                self.cut.set(Some(pos));
                return Ok(None);
            };
            pos = match h.tag {
                SEQUENCE_END => return Ok(Some(h.value)),
                ITEM_END => h.value,
                ITEM if h.length == UNDEFINED => {
                    match self.data_set(h.value, self.bytes.len(), depth, true)? {
                        Some(p) => p,
                        None => return Ok(None),
                    }
                }
                ITEM => {
                    let left = end.saturating_sub(h.value);
                    if h.length as usize > left {
                        return Err(format!(
                            "item at byte {} {} of sequence ({:04X},{:04X}) declares {} bytes, \
                             but only {left} follow in its sequence (truncated or corrupt)",
                            h.offset, self.place, seq.tag.0, seq.tag.1, h.length
                        ));
                    }
                    let item_end = h.value + h.length as usize;
                    if self
                        .data_set(h.value, item_end.min(self.bytes.len()), depth, false)?
                        .is_none()
                    {
                        return Ok(None);
                    }
                    item_end
                }
                _ => return Ok(None), // the parser stops: not an item
            };
        }
        Ok(Some(pos))
    }

    /// The fragments of encapsulated pixel data, up to the sequence delimiter.
    fn fragments(&self, mut pos: usize) -> Flow {
        loop {
            let Some(h) = self.header(pos) else {
                self.cut.set(Some(pos));
                return Ok(None);
            };
            match h.tag {
                SEQUENCE_END => return Ok(Some(h.value)),
                ITEM if h.length != UNDEFINED => pos = self.value_end(&h)?,
                _ => return Ok(None),
            }
        }
    }
}

/// The VR the implicit-VR reader gives `tag`: the standard dictionary's (Pixel Data and
/// overlay data are OW whatever it says), UN for a tag it does not list.
fn implicit_vr(tag: (u16, u16)) -> [u8; 2] {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    if tag == PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return *b"OW";
    }
    let vr = dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(tag.0, tag.1))
        .map_or(dicom_core::VR::UN, |e| e.vr().relaxed());
    let name = vr.to_string().as_bytes();
    [name[0], name[1]]
}

/// Bytes per number of a value of VR `vr`, as the parser reads it (1 for text and bytes).
fn number_size(vr: &[u8; 2]) -> u32 {
    match vr {
        b"US" | b"OW" | b"SS" => 2,
        b"UL" | b"OL" | b"SL" | b"FL" | b"OF" | b"AT" => 4,
        b"FD" | b"OD" | b"SV" | b"OV" | b"UV" => 8,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit VR little endian element.
    fn el(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(tag.0.to_le_bytes());
        out.extend(tag.1.to_le_bytes());
        out.extend(vr);
        if SHORT_VRS.contains(&vr) {
            out.extend((value.len() as u16).to_le_bytes());
        } else {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        }
        out.extend(value);
        out
    }

    fn raw(tag: (u16, u16), length: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(tag.0.to_le_bytes());
        out.extend(tag.1.to_le_bytes());
        out.extend(length.to_le_bytes());
        out
    }

    fn file(syntax: &str, data_set: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let syntax = el(TRANSFER_SYNTAX, b"UI", &uid);
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        out.extend(el(
            (0x0002, 0x0000),
            b"UL",
            &(syntax.len() as u32).to_le_bytes(),
        ));
        out.extend(syntax);
        out.extend(data_set);
        out
    }

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn a_value_longer_than_the_file_is_refused_with_its_tag_and_offset() {
        let mut ds = el((0x0028, 0x0010), b"US", &4u16.to_le_bytes());
        let at = 128 + 4 + 12 + 8 + 20 + ds.len();
        ds.extend([0x09, 0x00, 0x10, 0x10]);
        ds.extend(b"OB\0\0");
        ds.extend(0x7FFF_FFF0u32.to_le_bytes());
        ds.extend([0u8; 10]);
        let e = check_structure(&file(EXPLICIT_LE, &ds)).unwrap_err();
        assert!(e.contains("(0009,1010)"), "{e}");
        assert!(e.contains(&format!("at byte {at}")), "{e}");
        assert!(
            e.contains("2147483632 bytes") && e.contains("only 10 follow"),
            "{e}"
        );
    }

    /// A sequence of defined length must hold exactly that length: one declared past the file
    /// is refused as a value would be, and so is one whose items end early (at a sequence
    /// delimiter) or late. The walk skipped to the declared end, while the parser reads on
    /// from where the items end: the `dicom_plane` fuzz target's find (2026-12-02), a
    /// sequence declared 3.7 GB long whose delimiter was followed by an element that claimed
    /// 3.7 GB, which the parser then allocated and zeroed (2 GB resident, seconds per file).
    #[test]
    fn a_defined_length_sequence_must_hold_its_length() {
        let mut item = raw(ITEM, 10);
        item.extend(el((0x0008, 0x0100), b"SH", b"AB"));
        let sequence = |length: u32, body: &[u8]| {
            let mut ds = el((0x0008, 0x1140), b"SQ", &[]);
            ds.truncate(ds.len() - 4);
            ds.extend(length.to_le_bytes());
            ds.extend(body);
            ds
        };
        let at = 128 + 4 + 12 + 8 + 20;
        // Exactly its length, then an element: fine.
        let mut ds = sequence(item.len() as u32, &item);
        ds.extend(el((0x0010, 0x0010), b"PN", b"AB"));
        assert_eq!(check_structure(&file(EXPLICIT_LE, &ds)), Ok(()));
        // Declared past the file (the find's 0xDFFFFFFF).
        let e = check_structure(&file(EXPLICIT_LE, &sequence(0xDFFF_FFFF, &item))).unwrap_err();
        assert!(
            e.contains("sequence (0008,1140)")
                && e.contains(&format!("at byte {at}"))
                && e.contains("declares 3758096383 bytes, but only 18 follow"),
            "{e}"
        );
        // Ended early by a delimiter, the bytes after it (which the parser reads as elements)
        // hiding an element that claims 3.7 GB within the declared length.
        let mut body = item.clone();
        body.extend(raw(SEQUENCE_END, 0));
        body.extend([0xFE, 0x00, 0xE0, 0xFF, 0x00, 0x0D, 0x00, 0xFE]);
        body.extend(0xE000_FF00u32.to_le_bytes());
        let e =
            check_structure(&file(EXPLICIT_LE, &sequence(body.len() as u32, &body))).unwrap_err();
        assert!(e.contains("its items end 12 bytes before that"), "{e}");
        // An item running past the sequence's end.
        let e = check_structure(&file(EXPLICIT_LE, &sequence(12, &item))).unwrap_err();
        assert!(
            e.contains("item at byte") && e.contains("declares 10 bytes, but only 4 follow"),
            "{e}"
        );
        // The same in a sequence of undefined length running to the file's end, and an item
        // or a sequence delimiter where an element should be (the fuzzer's second find that
        // day: a defined-length item declared 4.3 GB long, in which the walk took an
        // undefined-length item for a sequence and stopped where the parser read on).
        let mut long_item = raw(ITEM, 0xFF5B_FFFF);
        long_item.extend(el((0x0008, 0x0100), b"SH", b"AB"));
        let e = check_structure(&file(EXPLICIT_LE, &sequence(UNDEFINED, &long_item))).unwrap_err();
        assert!(
            e.contains("declares 4284219391 bytes, but only 10 follow"),
            "{e}"
        );
        for token in [ITEM, SEQUENCE_END] {
            let mut in_item = raw(ITEM, UNDEFINED);
            in_item.extend(raw(token, 0));
            let e =
                check_structure(&file(EXPLICIT_LE, &sequence(UNDEFINED, &in_item))).unwrap_err();
            assert!(
                e.contains(&format!("({:04X},{:04X})", token.0, token.1))
                    && e.contains("stands where an element should be"),
                "{e}"
            );
        }
    }

    #[test]
    fn well_formed_nesting_and_fragments_pass() {
        // A sequence of undefined length holding an item of undefined length holding a
        // defined-length sequence, then encapsulated pixel data with two fragments.
        let mut inner = raw(ITEM, 10);
        inner.extend(el((0x0008, 0x0100), b"SH", b"AB"));
        let mut ds = el((0x0008, 0x1140), b"SQ", &[]);
        ds.truncate(ds.len() - 4);
        ds.extend(UNDEFINED.to_le_bytes());
        ds.extend(raw(ITEM, UNDEFINED));
        ds.extend(el((0x0008, 0x1150), b"SQ", &inner));
        ds.extend(raw(ITEM_END, 0));
        ds.extend(raw(SEQUENCE_END, 0));
        ds.extend([0xE0, 0x7F, 0x10, 0x00]);
        ds.extend(b"OB\0\0");
        ds.extend(UNDEFINED.to_le_bytes());
        ds.extend(raw(ITEM, 0));
        ds.extend(raw(ITEM, 4));
        ds.extend([1, 2, 3, 4]);
        ds.extend(raw(SEQUENCE_END, 0));
        assert_eq!(
            check_structure(&file("1.2.840.10008.1.2.4.80", &ds)),
            Ok(())
        );
        // The same with a fragment claiming more than is left.
        let mut bad = ds.clone();
        let n = bad.len();
        bad[n - 16..n - 12].copy_from_slice(&1000u32.to_le_bytes());
        bad.truncate(n - 8);
        let e = check_structure(&file("1.2.840.10008.1.2.4.80", &bad)).unwrap_err();
        assert!(e.contains("(FFFE,E000)") && e.contains("1000 bytes"), "{e}");
    }

    /// `depth` sequences of undefined length, each holding one item of undefined length.
    fn nested(depth: usize) -> Vec<u8> {
        let mut ds = Vec::new();
        for _ in 0..depth {
            ds.extend(el((0x0008, 0x1140), b"SQ", &[]));
            let n = ds.len();
            ds[n - 4..].copy_from_slice(&UNDEFINED.to_le_bytes());
            ds.extend(raw(ITEM, UNDEFINED));
        }
        for _ in 0..depth {
            ds.extend(raw(ITEM_END, 0));
            ds.extend(raw(SEQUENCE_END, 0));
        }
        ds
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        assert_eq!(
            check_structure(&file(EXPLICIT_LE, &nested(MAX_NESTING))),
            Ok(())
        );
        let e = check_structure(&file(EXPLICIT_LE, &nested(MAX_NESTING + 1))).unwrap_err();
        assert!(e.contains("nested more than 64 deep"), "{e}");
        // 100,000 levels: refused without the walk itself going deeper than the limit.
        assert!(check_structure(&file(EXPLICIT_LE, &nested(100_000))).is_err());
    }

    #[test]
    fn implicit_vr_nesting_with_defined_lengths_is_counted() {
        // Implicit VR: a defined-length sequence looks like any value but starts with an item.
        let mut value = Vec::new();
        for _ in 0..(MAX_NESTING + 1) {
            let mut outer = raw((0x0008, 0x1140), 0);
            let mut item = raw(ITEM, value.len() as u32);
            item.extend(&value);
            outer[4..8].copy_from_slice(&(item.len() as u32).to_le_bytes());
            outer.extend(item);
            value = outer;
        }
        let e = check_structure(&file("1.2.840.10008.1.2", &value)).unwrap_err();
        assert!(e.contains("nested"), "{e}");
    }

    #[test]
    fn big_endian_lengths_are_read_big_endian() {
        let mut ds = vec![0x00, 0x28, 0x00, 0x10];
        ds.extend(b"US");
        ds.extend(2u16.to_be_bytes());
        ds.extend(4u16.to_be_bytes());
        assert_eq!(check_structure(&file("1.2.840.10008.1.2.2", &ds)), Ok(()));
        ds.extend([0x7F, 0xE0, 0x00, 0x10]);
        ds.extend(b"OW\0\0");
        ds.extend(0x0100_0000u32.to_be_bytes());
        ds.extend([0u8; 8]);
        let e = check_structure(&file("1.2.840.10008.1.2.2", &ds)).unwrap_err();
        assert!(
            e.contains("(7FE0,0010)") && e.contains("16777216 bytes"),
            "{e}"
        );
    }

    #[test]
    fn where_the_parser_stops_the_walk_stops() {
        // No magic; no group length first; a file ending inside a header; a sequence
        // holding something other than an item (then the huge value after it is the
        // parser's to refuse, which it does before reaching it).
        assert_eq!(check_structure(b"not a dicom file"), Ok(()));
        let mut no_group_length = vec![0u8; 128];
        no_group_length.extend(b"DICM");
        no_group_length.extend(el(TRANSFER_SYNTAX, b"UI", b"1.2.840.10008.1.2.1\0"));
        no_group_length.extend(raw((0x0009, 0x0010), u32::MAX - 1));
        assert_eq!(check_structure(&no_group_length), Ok(()));
        assert_eq!(
            check_structure(&file(EXPLICIT_LE, &[0x08, 0x00, 0x10])),
            Ok(())
        );
        let mut not_an_item = el((0x0008, 0x1140), b"SQ", &[]);
        let n = not_an_item.len();
        not_an_item[n - 4..].copy_from_slice(&UNDEFINED.to_le_bytes());
        not_an_item.extend(el((0x0008, 0x0100), b"SH", b"AB"));
        assert_eq!(check_structure(&file(EXPLICIT_LE, &not_an_item)), Ok(()));
        // A deflated data set that is not a deflate stream.
        let deflated = file(DEFLATED, &[0xFF; 40]);
        assert_eq!(check_structure(&deflated), Ok(()));
        // A deflate stream cut short: what inflated before the cut is walked.
        let mut big = el((0x0028, 0x0010), b"US", &4u16.to_le_bytes());
        big.extend([0x09, 0x00, 0x10, 0x10]);
        big.extend(b"OB\0\0");
        big.extend(0x7FFF_FFF0u32.to_le_bytes());
        big.extend((0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let stream = deflate(&big);
        let e = check_structure(&file(DEFLATED, &stream[..stream.len() / 2])).unwrap_err();
        assert!(e.contains("(0009,1010)"), "{e}");
        // A stream that breaks: one stored block, then a block of the reserved type. Read
        // through a `Read` adapter with a large buffer, the stored block's output came with
        // the error and was lost (the fuzzer's sixth find, a 1.5 GB value in such a block).
        let head = &big[..40];
        let mut broken = vec![0x00, 40, 0, !40u8, 0xFF];
        broken.extend(head);
        broken.push(0x07);
        let e = check_structure(&file(DEFLATED, &broken)).unwrap_err();
        assert!(e.contains("(0009,1010)"), "{e}");
    }

    #[test]
    fn headers_are_read_as_the_parser_reads_them() {
        // Two bytes that are no VR: a 32-bit length after two reserved bytes, as UN (the
        // fuzzer's first find: such a header declaring 3.6 GB).
        let mut ds = vec![0xD6, 0xD6, 0xD6, 0xD6, 0xD6, 0xD6, 0, 0];
        ds.extend(0xD6D6_D6D6u32.to_le_bytes());
        ds.extend([0; 6]);
        let e = check_structure(&file(EXPLICIT_LE, &ds)).unwrap_err();
        assert!(
            e.contains("(D6D6,D6D6)") && e.contains("3604403926 bytes"),
            "{e}"
        );
        // An item outside any sequence is read as a plain element with its length.
        let e = check_structure(&file(EXPLICIT_LE, &raw(ITEM, 1 << 30))).unwrap_err();
        assert!(e.contains("(FFFE,E000)"), "{e}");
        // A value of numbers is read as whole numbers: 7 bytes declared as UL are read as 4,
        // and the parser reads the next header from there (the fuzzer's third find).
        let mut ds = vec![0x28, 0x00, 0x00, 0x00, b'U', b'L', 7, 0, 0, 0, 0, 0];
        ds.extend([0x10, 0x00, 0x20, 0x00]);
        ds.extend(b"UN\0\0");
        ds.extend(0xFFFF_0000u32.to_le_bytes());
        let e = check_structure(&file(EXPLICIT_LE, &ds)).unwrap_err();
        assert!(
            e.contains("(0010,0020)") && e.contains("4294901760 bytes"),
            "{e}"
        );
        // The transfer syntax UID is trimmed of any trailing white space, a tab too: this
        // one is implicit VR (the fuzzer's fourth find, read as explicit before).
        let mut ds = raw((0x0009, 0x0010), 0x7FFF_FFF0);
        ds.extend([0; 8]);
        let e = check_structure(&file("1.2.840.10008.1.2\t", &ds)).unwrap_err();
        assert!(
            e.contains("(0009,0010)") && e.contains("2147483632 bytes"),
            "{e}"
        );
        // In the meta group every value is read whole, numbers too (the fuzzer's fifth
        // find: a 2-byte UV there, which the data set reader would read as 0 bytes).
        let mut bytes = file(EXPLICIT_LE, &[]);
        let uv = el((0x7FE0, 0x0003), b"UV", &[0, 0]);
        let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap());
        bytes[140..144].copy_from_slice(&(group_length + uv.len() as u32).to_le_bytes());
        bytes.extend(uv);
        bytes.extend([0x09, 0x00, 0x10, 0x00]);
        bytes.extend(b"OB\0\0");
        bytes.extend(0x7FE0_0000u32.to_le_bytes());
        let e = check_structure(&bytes).unwrap_err();
        assert!(
            e.contains("(0009,0010)") && e.contains("2145386496 bytes"),
            "{e}"
        );
        // An item delimiter outside any item is skipped.
        let mut ds = raw(ITEM_END, 0);
        ds.extend(el((0x0028, 0x0010), b"US", &4u16.to_le_bytes()));
        assert_eq!(check_structure(&file(EXPLICIT_LE, &ds)), Ok(()));
        // The meta group ends where its group length says: a group length running into
        // the data set makes the parser read the data set's first element as meta.
        let mut bytes = file(EXPLICIT_LE, &el((0x0009, 0x0010), b"OB", &[0; 4]));
        let n = bytes.len();
        bytes[n - 8..n - 4].copy_from_slice(&1000u32.to_le_bytes());
        let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap());
        bytes[140..144].copy_from_slice(&(group_length + 16).to_le_bytes());
        let e = check_structure(&bytes).unwrap_err();
        assert!(e.contains("(0009,0010)") && e.contains("1000 bytes"), "{e}");
    }

    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

    fn deflate(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn deflated_data_sets_are_inflated_and_walked() {
        let good = el((0x0028, 0x0010), b"US", &4u16.to_le_bytes());
        assert_eq!(check_structure(&file(DEFLATED, &deflate(&good))), Ok(()));
        let mut bad = good.clone();
        bad.extend([0x09, 0x00, 0x10, 0x10]);
        bad.extend(b"OB\0\0");
        bad.extend(0x7FFF_FFF0u32.to_le_bytes());
        let e = check_structure(&file(DEFLATED, &deflate(&bad))).unwrap_err();
        assert!(e.contains("at byte 10 of the inflated data set"), "{e}");
        assert!(check_structure(&file(DEFLATED, &deflate(&nested(80)))).is_err());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // 80 MiB of zeros in one value: about 80 kB deflated, a thousand times smaller.
        let n = 80usize << 20;
        let mut bomb = Vec::with_capacity(n + 12);
        bomb.extend([0x09, 0x00, 0x10, 0x10]);
        bomb.extend(b"OB\0\0");
        bomb.extend((n as u32).to_le_bytes());
        bomb.resize(n + 12, 0);
        let compressed = deflate(&bomb);
        assert!(compressed.len() < 200_000, "{}", compressed.len());
        let e = check_structure(&file(DEFLATED, &compressed)).unwrap_err();
        assert!(e.contains("decompression bomb"), "{e}");
        // The same value under the 64 MiB floor passes.
        let n = 1usize << 20;
        bomb.truncate(n + 12);
        bomb[8..12].copy_from_slice(&(n as u32).to_le_bytes());
        assert_eq!(check_structure(&file(DEFLATED, &deflate(&bomb))), Ok(()));
    }
}
