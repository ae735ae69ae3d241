//! Decimal digits without the `fmt` machinery, for the hot writers: log
//! times, chunk sizes and `Content-Length`, metric sample values.

/// `value` in decimal, zero-padded to at least `width` digits (at most
/// 20), written into the end of `buf`.
pub fn decimal(buf: &mut [u8; 20], mut value: u64, width: usize) -> &[u8] {
    buf.fill(b'0');
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let at = at.min(buf.len().saturating_sub(width));
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_padding() {
        let mut b = [0; 20];
        assert_eq!(decimal(&mut b, 0, 1), b"0");
        assert_eq!(decimal(&mut b, 7, 4), b"0007");
        assert_eq!(decimal(&mut b, 123_456, 2), b"123456");
        assert_eq!(decimal(&mut b, u64::MAX, 1), b"18446744073709551615");
        assert_eq!(decimal(&mut b, 5, 30), b"00000000000000000005");
    }
}
