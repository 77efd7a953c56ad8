//! A zero-copy msgpack token reader: the one place that knows msgpack's byte layout.
//!
//! It never recurses and never allocates; containers are returned as headers (`Array(n)`,
//! `Map(n)`), so callers walk nested data with their own explicit stacks and Fluent Bit's
//! small coroutine stacks are never at risk.

use std::fmt;

/// One msgpack item; strings, binaries and ext payloads borrow from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    Array(u32),
    Map(u32),
}

/// Why bytes could not be read as msgpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgpackError {
    /// The input ends inside an object.
    Truncated,
    /// 0xc1, the one byte msgpack never uses.
    ReservedByte,
}

impl fmt::Display for MsgpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgpackError::Truncated => f.write_str("msgpack object cut short"),
            MsgpackError::ReservedByte => f.write_str("reserved msgpack byte 0xc1"),
        }
    }
}

impl std::error::Error for MsgpackError {}

/// A cursor over a msgpack byte buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Moves back (or forward) to a position this reader has already reported.
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// The next token, without consuming it.
    pub fn peek_token(&self) -> Result<Token<'a>, MsgpackError> {
        self.clone().next_token()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(MsgpackError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len8(&mut self) -> Result<usize, MsgpackError> {
        Ok(self.byte()? as usize)
    }

    fn len16(&mut self) -> Result<usize, MsgpackError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }

    fn len32(&mut self) -> Result<usize, MsgpackError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn ext(&mut self, len: usize) -> Result<Token<'a>, MsgpackError> {
        let kind = self.byte()? as i8;
        Ok(Token::Ext(kind, self.take(len)?))
    }

    /// Reads the next token. Inlined: returned through memory, a token costs a store-forwarding
    /// stall per value on the hot path (the profile's biggest single cost before).
    #[inline(always)]
    pub fn next_token(&mut self) -> Result<Token<'a>, MsgpackError> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => Token::UInt(b as u64),
            0x80..=0x8f => Token::Map((b & 0x0f) as u32),
            0x90..=0x9f => Token::Array((b & 0x0f) as u32),
            0xa0..=0xbf => Token::Str(self.take((b & 0x1f) as usize)?),
            0xc0 => Token::Nil,
            0xc1 => return Err(MsgpackError::ReservedByte),
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => {
                let n = self.len8()?;
                Token::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Token::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Token::Bin(self.take(n)?)
            }
            0xc7 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Token::F32(f32::from_be_bytes(self.be()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Token::UInt(self.byte()? as u64),
            0xcd => Token::UInt(u16::from_be_bytes(self.be()?) as u64),
            0xce => Token::UInt(u32::from_be_bytes(self.be()?) as u64),
            0xcf => Token::UInt(u64::from_be_bytes(self.be()?)),
            0xd0 => Token::Int(self.byte()? as i8 as i64),
            0xd1 => Token::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Token::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Token::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len8()?;
                Token::Str(self.take(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Token::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Token::Str(self.take(n)?)
            }
            0xdc => Token::Array(self.len16()? as u32),
            0xdd => Token::Array(self.len32()? as u32),
            0xde => Token::Map(self.len16()? as u32),
            0xdf => Token::Map(self.len32()? as u32),
            0xe0..=0xff => Token::Int(b as i8 as i64),
        })
    }

    /// Skips one whole object (however deeply nested) without recursion.
    pub fn skip_value(&mut self) -> Result<(), MsgpackError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.next_token()? {
                Token::Array(n) => pending += n as u64,
                Token::Map(n) => pending += 2 * n as u64,
                _ => {}
            }
            // Every pending item needs at least one byte: fail early on absurd headers.
            if pending > self.remaining() as u64 {
                return Err(MsgpackError::Truncated);
            }
        }
        Ok(())
    }

    /// The bytes read since `from`, a position this reader reported.
    pub fn since(&self, from: usize) -> &'a [u8] {
        &self.buf[from.min(self.pos)..self.pos]
    }

    /// Reads one whole object and returns its raw bytes.
    pub fn raw_value(&mut self) -> Result<&'a [u8], MsgpackError> {
        let start = self.pos;
        self.skip_value()?;
        Ok(self.since(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_width() {
        let bytes = [
            0x05, 0xcc, 0xff, 0xcd, 0x01, 0x00, 0xd0, 0x80, 0xe0, 0xc0, 0xc3, 0xa1, b'a', 0xc4, 0x01, 0xff, 0xd4, 0x02,
            0x07,
        ];
        let mut r = Reader::new(&bytes);
        let got: Vec<Token> = std::iter::from_fn(|| (!r.is_empty()).then(|| r.next_token().unwrap())).collect();
        assert_eq!(
            got,
            vec![
                Token::UInt(5),
                Token::UInt(255),
                Token::UInt(256),
                Token::Int(-128),
                Token::Int(-32),
                Token::Nil,
                Token::Bool(true),
                Token::Str(b"a"),
                Token::Bin(&[0xff]),
                Token::Ext(2, &[7]),
            ]
        );
    }

    #[test]
    fn skip_rejects_absurd_lengths_without_looping() {
        // array32 claiming 4 billion items in a 5-byte buffer
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.skip_value(), Err(MsgpackError::Truncated));
    }

    #[test]
    fn skip_handles_deep_nesting_iteratively() {
        let depth = 200_000;
        let mut bytes = vec![0x91u8; depth];
        bytes.push(0xc0);
        let mut r = Reader::new(&bytes);
        r.skip_value().unwrap();
        assert!(r.is_empty());
    }
}
