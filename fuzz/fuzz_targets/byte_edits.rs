//! The byte edits `run_weights`, `run_resume`, `interrupted_save` and
//! `interrupted_kfold_save` (through `swap_state`) apply to a real run file (a module of each,
//! not a target of its own), so that mutations reach past a file's header into its names,
//! shapes and values.

/// The real file with the input's truncation and patches applied (`run_weights`' and
/// `run_resume`'s edit modes): a flag byte (odd = truncate, then a little-endian `u32` length
/// mod the file's length + 1), then patches of five bytes, a little-endian `u32` offset (mod
/// the length) and the byte written there.
pub fn edited(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let mut edits = edits;
    if let Some((&flag, rest)) = edits.split_first() {
        edits = rest;
        if flag % 2 == 1 && edits.len() >= 4 {
            let n = u32::from_le_bytes(edits[..4].try_into().unwrap()) as usize;
            bytes.truncate(n % (original.len() + 1));
            edits = &edits[4..];
        }
    }
    for patch in edits.chunks_exact(5) {
        if bytes.is_empty() {
            break;
        }
        let at = u32::from_le_bytes(patch[..4].try_into().unwrap()) as usize % bytes.len();
        bytes[at] = patch[4];
    }
    bytes
}
