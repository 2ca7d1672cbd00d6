//! MySQL packet framing: a 3-byte little-endian payload length and a
//! sequence number; a payload of exactly 2^24-1 bytes is continued by the
//! next packet. And the protocol's integer and string encodings. Pure.

/// The largest payload of one physical packet; one this long is continued.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub seq: u8,
}

/// The header at the start of `buf`, if four bytes are there.
pub fn header(buf: &[u8]) -> Option<Header> {
    let h = buf.get(..4)?;
    Some(Header { len: usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16, seq: h[3] })
}

/// Append `payload` framed as packets starting at `seq` (split at
/// [`MAX_PAYLOAD`], an empty packet after an exact multiple); returns the
/// next sequence number.
pub fn frame(mut seq: u8, payload: &[u8], out: &mut Vec<u8>) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return seq;
        }
    }
}

/// Reads the protocol's encodings from a payload; every read is checked.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        let b = self.bytes(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-encoded integer (`0xFB`, NULL, is refused).
    pub fn lenenc(&mut self) -> Option<u64> {
        match self.u8()? {
            n @ 0..=0xFA => Some(u64::from(n)),
            0xFC => Some(u64::from(self.u16()?)),
            0xFD => {
                let b = self.bytes(3)?;
                Some(u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16)
            }
            0xFE => {
                let b = self.bytes(8)?;
                Some(u64::from_le_bytes(b.try_into().ok()?))
            }
            _ => None,
        }
    }

    pub fn lenenc_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.lenenc()?).ok()?;
        self.bytes(n)
    }

    /// Bytes up to a NUL (consumed, not returned).
    pub fn nul_terminated(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        self.pos += end + 1;
        Some(&rest[..end])
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        r
    }
}

pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xFA => out.push(v as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_length_and_sequence() {
        assert_eq!(header(&[0x05, 0x00, 0x00, 0x00, 0x03]), Some(Header { len: 5, seq: 0 }));
        assert_eq!(header(&[0xFF, 0xFF, 0xFF, 0x07]), Some(Header { len: MAX_PAYLOAD, seq: 7 }));
        assert_eq!(header(&[0x01, 0x00, 0x00]), None, "three bytes are not a header");
    }

    #[test]
    fn framing_splits_at_the_maximum_and_ends_an_exact_multiple_with_an_empty_packet() {
        let mut out = Vec::new();
        assert_eq!(frame(0, b"\x03SELECT 1", &mut out), 1);
        assert_eq!(out, b"\x09\x00\x00\x00\x03SELECT 1");
        let big = vec![7u8; MAX_PAYLOAD];
        let mut out = Vec::new();
        assert_eq!(frame(3, &big, &mut out), 5);
        assert_eq!(out.len(), 4 + MAX_PAYLOAD + 4);
        assert_eq!(header(&out), Some(Header { len: MAX_PAYLOAD, seq: 3 }));
        assert_eq!(header(&out[4 + MAX_PAYLOAD..]), Some(Header { len: 0, seq: 4 }));
    }

    #[test]
    fn length_encoded_integers_round_trip_at_every_width() {
        for v in [0u64, 250, 251, 0xFFFF, 0x1_0000, 0xFF_FFFF, 0x100_0000, u64::MAX] {
            let mut out = Vec::new();
            put_lenenc(&mut out, v);
            assert_eq!(Cursor::new(&out).lenenc(), Some(v), "{v}");
        }
        assert_eq!(Cursor::new(&[0xFB]).lenenc(), None, "NULL is not a length");
        assert_eq!(Cursor::new(&[0xFC, 0x01]).lenenc(), None, "truncated");
    }

    #[test]
    fn strings_are_read_within_bounds() {
        let mut c = Cursor::new(b"root\0\x03abcxyz");
        assert_eq!(c.nul_terminated(), Some(&b"root"[..]));
        assert_eq!(c.lenenc_bytes(), Some(&b"abc"[..]));
        assert_eq!(c.rest(), b"xyz");
        assert!(c.is_empty());
        assert_eq!(Cursor::new(b"\x05ab").lenenc_bytes(), None);
        assert_eq!(Cursor::new(b"no-nul").nul_terminated(), None);
    }
}
