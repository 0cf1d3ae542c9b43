//! The image size a compressed DICOM frame declares in its own header (JPEG, JPEG-LS,
//! JPEG 2000), read before the frame is decoded.
//!
//! The decoders allocate for the size in the codestream, not for the DICOM header's Rows ×
//! Columns, which [`LoadOptions::max_pixels`](super::LoadOptions::max_pixels) checks: the
//! NEMA JPEG 2000 hip (`RG2_J2KR`) with the image and tile sizes in its SIZ marker set to
//! 60000 × 60000 took 14 GB of memory and 106 s before its decoder panicked. Comparing the two sizes first
//! refuses such a frame at once.

/// What a codestream's own header declares about its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Declared {
    pub width: u32,
    pub height: u32,
    /// Components (samples per pixel): each costs the decoder a whole plane.
    pub components: u32,
}

/// What the header of the codestream that `fragment` begins with declares, or `None` when
/// it begins with none this reads (a continuation fragment, an unknown format) or declares
/// a size of 0 (a JPEG whose height comes later, in a DNL marker).
pub(crate) fn declared_frame(fragment: &[u8]) -> Option<Declared> {
    if fragment.starts_with(&[0xFF, 0xD8]) {
        jpeg_frame(fragment)
    } else if fragment.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        j2k_frame(fragment)
    } else if fragment.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']) {
        // A JP2 file rather than a bare codestream: find the codestream's start.
        let head = &fragment[..fragment.len().min(1 << 16)];
        let at = head
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?;
        j2k_frame(&fragment[at..])
    } else {
        None
    }
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// JPEG 2000: the SIZ segment that follows SOC (image extent minus image offset, Csiz).
fn j2k_frame(cs: &[u8]) -> Option<Declared> {
    let (xsiz, ysiz) = (be32(cs, 8)?, be32(cs, 12)?);
    let (xosiz, yosiz) = (be32(cs, 16)?, be32(cs, 20)?);
    let d = Declared {
        width: xsiz.checked_sub(xosiz)?,
        height: ysiz.checked_sub(yosiz)?,
        components: be16(cs, 40)?,
    };
    (d.width > 0 && d.height > 0).then_some(d)
}

/// JPEG (every process) and JPEG-LS: the first start-of-frame marker's size and Nf.
fn jpeg_frame(cs: &[u8]) -> Option<Declared> {
    let mut at = 2;
    loop {
        if *cs.get(at)? != 0xFF {
            return None;
        }
        let marker = *cs.get(at + 1)?;
        match marker {
            0xFF => at += 1, // fill byte
            0x01 | 0xD0..=0xD7 => at += 2,
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC); SOF55 for JPEG-LS.
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7 => {
                let d = Declared {
                    height: be16(cs, at + 5)?,
                    width: be16(cs, at + 7)?,
                    components: u32::from(*cs.get(at + 9)?),
                };
                return (d.width > 0 && d.height > 0).then_some(d);
            }
            // Start of scan or end of image before any frame header.
            0xDA | 0xD9 => return None,
            _ => at += 2 + be16(cs, at + 2)? as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_and_jpeg_ls_frame_headers_give_their_size() {
        // SOI, an APP0 segment of 4 bytes, a DHT-free SOF3 (lossless): P=16, Y=480, X=640.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
        jpeg.extend([
            0xFF, 0xC3, 0x00, 0x0B, 16, 0x01, 0xE0, 0x02, 0x80, 1, 1, 0x11, 0,
        ]);
        let size = |width, height, components| {
            Some(Declared {
                width,
                height,
                components,
            })
        };
        assert_eq!(declared_frame(&jpeg), size(640, 480, 1));
        let mut ls = vec![
            0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 12, 0x00, 0x20, 0x00, 0x30,
        ];
        ls.extend([1, 1, 0x11, 0]);
        assert_eq!(declared_frame(&ls), size(48, 32, 1));
        // A height of 0 (given later by DNL) and a scan before any frame header: unknown.
        let dnl = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x00, 0x00, 0x30,
        ];
        assert_eq!(declared_frame(&dnl), None);
        assert_eq!(declared_frame(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        // Cut inside a segment.
        assert_eq!(declared_frame(&jpeg[..12]), None);
    }

    #[test]
    fn jpeg_2000_siz_gives_extent_minus_offset() {
        let mut cs = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [1760u32, 2140, 10, 20, 1760, 2140, 0, 0] {
            cs.extend(v.to_be_bytes());
        }
        cs.extend([0, 3, 15, 1, 1, 15, 1, 1, 15, 1, 1]); // Csiz 3, then Ssiz XRsiz YRsiz each
        let want = Some(Declared {
            width: 1750,
            height: 2120,
            components: 3,
        });
        assert_eq!(declared_frame(&cs), want);
        let mut jp2 = vec![
            0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
        ];
        jp2.extend([0u8; 30]);
        jp2.extend(&cs);
        assert_eq!(declared_frame(&jp2), want);
        // Offset beyond the extent, and data that is no codestream.
        cs[16..20].copy_from_slice(&5000u32.to_be_bytes());
        assert_eq!(declared_frame(&cs), None);
        assert_eq!(declared_frame(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
    }
}
