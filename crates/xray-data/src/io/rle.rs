//! The lengths an RLE Lossless DICOM frame's segments decode to, counted before decoding.
//!
//! dicom-rs 0.10's RLE decoder cuts every segment to Rows × Columns bytes and indexes past
//! one that decodes shorter. A corrupt run header (one byte changed in the NEMA hip
//! `RG2_RLE`) made the high-byte segment decode 126 bytes long, and the image came out with its
//! lower half shifted and banded, without an error. Counting what each PackBits segment
//! yields (one pass over the compressed bytes, no allocation) refuses such a frame with a
//! message that says what is wrong.

/// What is wrong with an RLE frame, in words for the caller's error.
pub(crate) fn check_rle_frame(
    fragment: &[u8],
    pixels: usize,
    segments: usize,
) -> Result<(), String> {
    let word = |at: usize| -> Option<usize> {
        let b = fragment.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let header = "its 64-byte RLE header is cut short".to_string();
    let declared = word(0).ok_or_else(|| header.clone())?;
    if declared != segments {
        return Err(format!(
            "its RLE header declares {declared} segments, where one sample of BitsAllocated \
             needs {segments}"
        ));
    }
    let mut offsets = Vec::with_capacity(segments + 1);
    for k in 0..segments {
        offsets.push(word(4 + 4 * k).ok_or_else(|| header.clone())?);
    }
    offsets.push(fragment.len());
    for k in 0..segments {
        let (start, end) = (offsets[k], offsets[k + 1]);
        if start < 64 || start > end || end > fragment.len() {
            return Err(format!(
                "RLE segment {k} starts at byte {start} and the next part at {end} of a \
                 {}-byte frame",
                fragment.len()
            ));
        }
        let decoded = packbits_len(&fragment[start..end]);
        // One byte more is tolerated: an odd Rows × Columns may be padded to even length.
        if decoded != pixels && decoded != pixels + 1 {
            return Err(format!(
                "RLE segment {k} decodes to {decoded} bytes where Rows x Columns need {pixels}: \
                 the compressed data is corrupt"
            ));
        }
    }
    Ok(())
}

/// Bytes a PackBits stream yields. A literal run cut by the end of the stream counts only
/// the bytes present (a segment's trailing pad byte reads as such a run).
fn packbits_len(stream: &[u8]) -> usize {
    let (mut at, mut len) = (0usize, 0usize);
    while at < stream.len() {
        let h = stream[at] as i8;
        at += 1;
        if h >= 0 {
            let n = (h as usize + 1).min(stream.len() - at);
            len += n;
            at += n;
        } else if h != -128 {
            if at < stream.len() {
                len += (1 - h as isize) as usize;
            }
            at += 1;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(segments: &[&[u8]]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut at = 64u32;
        let mut body = Vec::new();
        for (k, s) in segments.iter().enumerate() {
            f[4 + 4 * k..8 + 4 * k].copy_from_slice(&at.to_le_bytes());
            at += s.len() as u32;
            body.extend_from_slice(s);
        }
        f.extend(body);
        f
    }

    #[test]
    fn packbits_counts_literal_and_replicate_runs() {
        // Literal of 3, replicate 5 (header -4), no-op, literal of 1.
        assert_eq!(packbits_len(&[2, 1, 2, 3, 0xFC, 9, 0x80, 0, 7]), 3 + 5 + 1);
        // A trailing pad byte reads as a literal run with nothing left.
        assert_eq!(packbits_len(&[0xFD, 4, 0]), 4);
        // A replicate run whose value byte is missing yields nothing.
        assert_eq!(packbits_len(&[0xFD]), 0);
    }

    #[test]
    fn exact_and_padded_segments_pass() {
        let seg: &[u8] = &[0xF1, 3]; // 16 × the value 3
        assert_eq!(check_rle_frame(&frame(&[seg, seg]), 16, 2), Ok(()));
        let padded: &[u8] = &[0xF1, 3, 0];
        assert_eq!(check_rle_frame(&frame(&[padded]), 16, 1), Ok(()));
        let odd: &[u8] = &[0xF0, 3]; // 17 bytes for 16 pixels: the decoded pad
        assert_eq!(check_rle_frame(&frame(&[odd]), 16, 1), Ok(()));
    }

    #[test]
    fn segments_of_the_wrong_length_are_named() {
        let long: &[u8] = &[0xF1, 3, 0xFE, 1]; // 19 bytes
        let e = check_rle_frame(&frame(&[&[0xF1, 3], long]), 16, 2).unwrap_err();
        assert!(e.contains("segment 1 decodes to 19 bytes"), "{e}");
        let short: &[u8] = &[0, 5];
        let e = check_rle_frame(&frame(&[short]), 16, 1).unwrap_err();
        assert!(e.contains("segment 0 decodes to 1 bytes"), "{e}");
    }

    #[test]
    fn broken_headers_are_refused() {
        let seg: &[u8] = &[0xF1, 3];
        let e = check_rle_frame(&frame(&[seg]), 16, 2).unwrap_err();
        assert!(e.contains("declares 1 segments"), "{e}");
        assert!(check_rle_frame(&[1, 0, 0], 16, 1)
            .unwrap_err()
            .contains("cut short"));
        let mut f = frame(&[seg, seg]);
        f[8..12].copy_from_slice(&10_000u32.to_le_bytes());
        let e = check_rle_frame(&f, 16, 2).unwrap_err();
        assert!(
            e.contains("segment 0 starts at byte 64 and the next part at 10000"),
            "{e}"
        );
    }
}
