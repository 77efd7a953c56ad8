//! A Fluent Bit flush buffer → its records.
//!
//! The buffer is a plain concatenation of msgpack records, each `[[time, metadata], body]`
//! (Fluent Bit ≥ 2.1) or `[time, body]` (older Fluent Bit, old filesystem backlog); the form is
//! decided per record. Group start/end markers are skipped. A record whose msgpack is intact
//! but whose shape is wrong is skipped on its own; bytes that are not msgpack at all end the
//! walk, because record boundaries cannot be found past them.

use crate::core::msgpack::{MsgpackError, Reader, Token};
use std::fmt;

/// A record's timestamp as Fluent Bit carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime {
    pub secs: u64,
    pub nanos: u32,
}

impl EventTime {
    /// Milliseconds since the epoch, as CloudWatch wants them (saturating; such times are
    /// rejected by the service and reported there).
    pub fn millis(&self) -> i64 {
        let ms = (self.secs as i128) * 1000 + (self.nanos / 1_000_000) as i128;
        ms.min(i64::MAX as i128) as i64
    }
}

/// One decoded record; `body` is the raw msgpack map, transcoded later in one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    pub time: EventTime,
    pub metadata: &'a [u8],
    pub body: &'a [u8],
}

/// Why one record (with intact framing) was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecord {
    NotAnArray,
    BadHeader,
    BadTimestamp,
    BodyNotAMap,
    MetadataNotAMap,
}

impl BadRecord {
    pub fn as_str(&self) -> &'static str {
        match self {
            BadRecord::NotAnArray => "record is not a 2-element array",
            BadRecord::BadHeader => "record header is not [time, metadata]",
            BadRecord::BadTimestamp => "record time is not EventTime, a non-negative integer or a float",
            BadRecord::BodyNotAMap => "record body is not a map",
            BadRecord::MetadataNotAMap => "record metadata is not a map",
        }
    }
}

/// What the walk found at one position: a record (`Record`, or what `Chunk::next_with` made of
/// it), a group marker, or a record skipped for its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry<R> {
    Record(R),
    GroupMarker,
    Skipped(BadRecord),
}

/// Bytes that are not msgpack: the walk stops here, and everything from `offset` on is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub offset: usize,
    pub unread_bytes: usize,
    pub cause: MsgpackError,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chunk damaged at byte {} ({}); the {} bytes from there on could not be decoded",
            self.offset, self.cause, self.unread_bytes
        )
    }
}

/// Iterates over the entries of one flush buffer.
pub struct Chunk<'a> {
    reader: Reader<'a>,
    damaged: bool,
}

impl<'a> Chunk<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Chunk { reader: Reader::new(buf), damaged: false }
    }

    /// The next entry, its record's body read by `read`, given the record's time, its metadata
    /// and a reader at the body map, which it must consume whole (no more). This reads a body
    /// once, where `next` reads it to find its end and the caller reads it again. An error from
    /// `read` means the bytes are not msgpack: it ends the walk as damage, as in `next`.
    pub fn next_with<T>(
        &mut self,
        read: impl FnOnce(EventTime, &'a [u8], &mut Reader<'a>) -> Result<T, MsgpackError>,
    ) -> Option<Result<Entry<T>, Damage>> {
        if self.damaged || self.reader.is_empty() {
            return None;
        }
        let start = self.reader.position();
        let total = start + self.reader.remaining();
        match self.entry(read) {
            Ok(entry) => Some(Ok(entry)),
            Err(cause) => {
                self.damaged = true;
                Some(Err(Damage { offset: start, unread_bytes: total - start, cause }))
            }
        }
    }

    fn entry<T>(
        &mut self,
        read: impl FnOnce(EventTime, &'a [u8], &mut Reader<'a>) -> Result<T, MsgpackError>,
    ) -> Result<Entry<T>, MsgpackError> {
        let start = self.reader.position();
        match self.record(read)? {
            Ok(entry) => Ok(entry),
            Err(bad) => {
                // Keep the framing: step over the whole object from its start.
                self.reader.seek(start);
                self.reader.skip_value()?;
                Ok(Entry::Skipped(bad))
            }
        }
    }

    /// Reads one record in place; a shape error leaves the reader mid-object (see `entry`).
    fn record<T>(
        &mut self,
        read: impl FnOnce(EventTime, &'a [u8], &mut Reader<'a>) -> Result<T, MsgpackError>,
    ) -> Result<Result<Entry<T>, BadRecord>, MsgpackError> {
        if self.reader.next_token()? != Token::Array(2) {
            return Ok(Err(BadRecord::NotAnArray));
        }
        let (time, metadata) = match self.reader.next_token()? {
            Token::Array(2) => {
                let time = self.reader.next_token()?;
                if is_container(time) {
                    return Ok(Err(BadRecord::BadTimestamp));
                }
                if !is_container_map(self.reader.peek_token()?) {
                    return Ok(Err(BadRecord::MetadataNotAMap));
                }
                (time, self.reader.raw_value()?)
            }
            head if is_container(head) => return Ok(Err(BadRecord::BadHeader)),
            time => (time, &[][..]),
        };
        if !is_container_map(self.reader.peek_token()?) {
            return Ok(Err(BadRecord::BodyNotAMap));
        }
        Ok(match decode_time(time) {
            TimeOrMarker::Time(time) => Ok(Entry::Record(read(time, metadata, &mut self.reader)?)),
            TimeOrMarker::Marker => {
                self.reader.skip_value()?;
                Ok(Entry::GroupMarker)
            }
            TimeOrMarker::Invalid => Err(BadRecord::BadTimestamp),
        })
    }
}

fn is_container(t: Token<'_>) -> bool {
    matches!(t, Token::Array(_) | Token::Map(_))
}

fn is_container_map(t: Token<'_>) -> bool {
    matches!(t, Token::Map(_))
}

impl<'a> Iterator for Chunk<'a> {
    type Item = Result<Entry<Record<'a>>, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|time, metadata, reader| Ok(Record { time, metadata, body: reader.raw_value()? }))
    }
}

enum TimeOrMarker {
    Time(EventTime),
    Marker,
    Invalid,
}

/// Group markers are EventTime seconds 0xFFFFFFFF (start) / 0xFFFFFFFE (end) with 0 nanoseconds.
const GROUP_START: u32 = 0xFFFF_FFFF;
const GROUP_END: u32 = 0xFFFF_FFFE;

fn decode_time(token: Token<'_>) -> TimeOrMarker {
    match token {
        Token::Ext(0, data) if data.len() == 8 => {
            let secs = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            if secs == GROUP_START || secs == GROUP_END {
                return if nanos == 0 { TimeOrMarker::Marker } else { TimeOrMarker::Invalid };
            }
            if nanos > 999_999_999 {
                return TimeOrMarker::Invalid;
            }
            TimeOrMarker::Time(EventTime { secs: secs as u64, nanos })
        }
        Token::UInt(secs) => TimeOrMarker::Time(EventTime { secs, nanos: 0 }),
        Token::Int(secs) if secs >= 0 => TimeOrMarker::Time(EventTime { secs: secs as u64, nanos: 0 }),
        Token::F32(f) => float_time(f as f64),
        Token::F64(f) => float_time(f),
        _ => TimeOrMarker::Invalid,
    }
}

fn float_time(f: f64) -> TimeOrMarker {
    if !f.is_finite() || f < 0.0 || f >= u64::MAX as f64 {
        return TimeOrMarker::Invalid;
    }
    let secs = f.floor();
    let nanos = ((f - secs) * 1e9) as u32;
    TimeOrMarker::Time(EventTime { secs: secs as u64, nanos: nanos.min(999_999_999) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn reference_byte_examples_decode() {
        // the four examples of the ABI reference, §4.7
        let v2 = hex("92 92 d7 00 65 53 f1 00 1d cd 65 00 80 81 a1 61 a1 62");
        let legacy = hex("92 d7 00 65 53 f1 00 1d cd 65 00 81 a1 61 a1 62");
        let legacy_int = hex("92 ce 65 53 f1 00 81 a1 61 a1 62");
        let group_start = hex("92 92 d7 00 ff ff ff ff 00 00 00 00 80 80");
        let group_end = hex("92 92 d7 00 ff ff ff fe 00 00 00 00 80 80");
        let body = hex("81 a1 61 a1 62");
        for (buf, nanos) in [(v2, 500_000_000), (legacy, 500_000_000), (legacy_int, 0)] {
            let entries: Vec<_> = Chunk::new(&buf).collect();
            match entries.as_slice() {
                [Ok(Entry::Record(r))] => {
                    assert_eq!(r.time, EventTime { secs: 1_700_000_000, nanos });
                    assert_eq!(r.body, &body[..]);
                }
                other => panic!("{other:?}"),
            }
        }
        let mut markers = group_start;
        markers.extend(group_end);
        let entries: Vec<_> = Chunk::new(&markers).collect();
        assert_eq!(entries, vec![Ok(Entry::GroupMarker), Ok(Entry::GroupMarker)]);
    }

    #[test]
    fn ext8_header_and_float_time() {
        let buf = hex("92 c7 08 00 65 53 f1 00 00 00 00 00 80");
        let e: Vec<_> = Chunk::new(&buf).collect();
        assert!(matches!(e[0], Ok(Entry::Record(r)) if r.time.secs == 1_700_000_000));
        let buf = hex("92 cb 41 d9 54 fc 40 20 00 00 80"); // 1700000000.5
        let e: Vec<_> = Chunk::new(&buf).collect();
        assert!(matches!(e[0], Ok(Entry::Record(r)) if r.time.millis() == 1_700_000_000_500));
    }

    #[test]
    fn bad_shapes_are_skipped_and_the_walk_goes_on() {
        let good = hex("92 01 81 a1 61 a1 62");
        let mut buf = Vec::new();
        buf.extend(hex("81 a1 61 a1 62")); // a bare map
        buf.extend(hex("92 ff 80")); // negative time
        buf.extend(hex("92 01 a1 78")); // body a string
        buf.extend(hex("92 93 01 80 80 80")); // 3-element header
        buf.extend(hex("92 92 01 01 80")); // metadata not a map
        buf.extend(&good);
        let e: Vec<_> = Chunk::new(&buf).collect();
        assert_eq!(e.len(), 6, "{e:?}");
        assert_eq!(e[0], Ok(Entry::Skipped(BadRecord::NotAnArray)));
        assert_eq!(e[1], Ok(Entry::Skipped(BadRecord::BadTimestamp)));
        assert_eq!(e[2], Ok(Entry::Skipped(BadRecord::BodyNotAMap)));
        assert_eq!(e[3], Ok(Entry::Skipped(BadRecord::BadHeader)));
        assert_eq!(e[4], Ok(Entry::Skipped(BadRecord::MetadataNotAMap)));
        assert!(matches!(e[5], Ok(Entry::Record(_))));
    }

    #[test]
    fn next_with_reads_each_body_in_place_and_agrees_with_next() {
        let mut buf = hex("92 01 81 a1 61 a1 62"); // legacy record
        buf.extend(hex("92 92 d7 00 ff ff ff ff 00 00 00 00 80 80")); // group start
        buf.extend(hex("92 ff 80")); // negative time: skipped, body never read
        buf.extend(hex("92 92 02 81 a1 6d c0 82 a1 61 91 01 a1 63 80")); // v2, metadata
        buf.extend(hex("92 03 81 a1 61 a5 62")); // string cut short: damage
        let mut chunk = Chunk::new(&buf);
        let mut with = Vec::new();
        while let Some(entry) = chunk.next_with(|time, metadata, reader| {
            let from = reader.position();
            reader.skip_value()?;
            Ok(Record { time, metadata, body: reader.since(from) })
        }) {
            with.push(entry);
        }
        let plain: Vec<_> = Chunk::new(&buf).collect();
        assert_eq!(with, plain);
        assert_eq!(with.len(), 5);
        assert!(matches!(with[3], Ok(Entry::Record(r)) if r.body == hex("82 a1 61 91 01 a1 63 80")));
        // an error from the reader of a body is damage from that record on
        let mut chunk = Chunk::new(&buf[..7]);
        let e = chunk.next_with(|_, _, _| Err::<(), _>(MsgpackError::ReservedByte));
        assert_eq!(e, Some(Err(Damage { offset: 0, unread_bytes: 7, cause: MsgpackError::ReservedByte })));
        assert_eq!(chunk.next_with(|_, _, _| Ok(())), None);
    }

    #[test]
    fn damage_keeps_records_before_it() {
        let mut buf = hex("92 01 81 a1 61 a1 62");
        buf.extend(hex("92 01 81 a1 61 a5 62")); // string cut short
        let e: Vec<_> = Chunk::new(&buf).collect();
        assert!(matches!(e[0], Ok(Entry::Record(_))));
        assert_eq!(e[1], Err(Damage { offset: 7, unread_bytes: 7, cause: MsgpackError::Truncated }));
        assert_eq!(e.len(), 2);
    }
}
