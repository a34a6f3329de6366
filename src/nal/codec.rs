//! Big-endian encoding of integers and byte strings into a moving window
//! (libnal's `NAL_encode_*` and `NAL_decode_*`): each call takes its bytes
//! from the front of the window and shrinks it, or fails and leaves the
//! window as it was when too few bytes remain.

/// Takes `N` bytes from the front of `input`.
pub fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>()?;
    *input = rest;
    Some(*head)
}

/// Copies `out.len()` bytes from the front of `input` into `out`.
pub fn take_into(input: &mut &[u8], out: &mut [u8]) -> bool {
    let Some((head, rest)) = input.split_at_checked(out.len()) else {
        return false;
    };
    out.copy_from_slice(head);
    *input = rest;
    true
}

/// Writes `bytes` at the front of `output` and moves past them.
pub fn put(output: &mut &mut [u8], bytes: &[u8]) -> bool {
    if output.len() < bytes.len() {
        return false;
    }
    let (head, rest) = std::mem::take(output).split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    *output = rest;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_input() {
        let mut buf = [0u8; 7];
        let mut out: &mut [u8] = &mut buf;
        assert!(put(&mut out, &0x0102_0304u32.to_be_bytes()));
        assert!(put(&mut out, &0x0506u16.to_be_bytes()));
        assert!(!put(&mut out, &[1, 2]), "only one byte left");
        assert_eq!(out.len(), 1);
        assert!(put(&mut out, &[7]));
        let mut input: &[u8] = &buf;
        assert_eq!(take::<4>(&mut input), Some([1, 2, 3, 4]));
        assert_eq!(take::<4>(&mut input), None);
        assert_eq!(input.len(), 3, "a failed take consumes nothing");
        let mut two = [0u8; 2];
        assert!(take_into(&mut input, &mut two));
        assert_eq!(two, [5, 6]);
        assert!(!take_into(&mut input, &mut two));
        assert_eq!(input, &[7]);
    }
}
