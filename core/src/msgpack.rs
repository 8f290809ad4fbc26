//! A streaming MessagePack reader: one item (a scalar, or an array's or map's header) at a time,
//! borrowing from the bytes, so walking a value builds no tree — its memory does not grow with
//! the value's size or depth. Used to print task values as JSON and to check job inputs against
//! their declared types.

/// One MessagePack item: a scalar, or the header of an array or a map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8),
    Array(u64),
    Map(u64),
}

/// Reads [`Item`]s off a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("not MessagePack: truncated at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
    }

    fn sized(&mut self, n: usize) -> Result<&'a [u8], String> {
        let len = self.be(n)?;
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// The next item.
    ///
    /// # Errors
    /// Truncated bytes or the reserved marker.
    pub fn item(&mut self) -> Result<Item<'a>, String> {
        let marker = self.take(1)?[0];
        #[expect(
            clippy::cast_possible_wrap,
            reason = "MessagePack ints are two's complement"
        )]
        Ok(match marker {
            0x00..=0x7f => Item::Uint(u64::from(marker)),
            0x80..=0x8f => Item::Map(u64::from(marker & 0x0f)),
            0x90..=0x9f => Item::Array(u64::from(marker & 0x0f)),
            0xa0..=0xbf => Item::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Item::Nil,
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xc4 => Item::Bin(self.sized(1)?),
            0xc5 => Item::Bin(self.sized(2)?),
            0xc6 => Item::Bin(self.sized(4)?),
            0xc7..=0xc9 => {
                let len = self.be(1 << (marker - 0xc7))?;
                let tag = self.take(1)?[0] as i8;
                self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
                Item::Ext(tag)
            }
            0xca => Item::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Item::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => Item::Uint(self.be(1 << (marker - 0xcc))?),
            0xd0 => Item::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => Item::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Item::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Item::Int(self.be(8)? as i64),
            0xd4..=0xd8 => {
                let tag = self.take(1)?[0] as i8;
                self.take(1 << (marker - 0xd4))?;
                Item::Ext(tag)
            }
            0xd9 => Item::Str(self.sized(1)?),
            0xda => Item::Str(self.sized(2)?),
            0xdb => Item::Str(self.sized(4)?),
            0xdc => Item::Array(self.be(2)?),
            0xdd => Item::Array(self.be(4)?),
            0xde => Item::Map(self.be(2)?),
            0xdf => Item::Map(self.be(4)?),
            0xe0..=0xff => Item::Int(i64::from(marker as i8)),
            0xc1 => return Err("not MessagePack: reserved marker 0xc1".into()),
        })
    }
}
