//! A PutLogEvents request body in parts: the head written for the batch, the run of the plan's
//! arena that already holds its events framed, and the closing `]}` (`core::batch::body_parts`).
//! The events are never copied into a body buffer: the parts are hashed one after the other for
//! SigV4 (or their hash is computed ahead, side by side with the flush's other bodies:
//! `payload_hashes`) and handed to the HTTP client as they are. Cloning it (each retry) clones
//! three handles.

use crate::aws::payload_hashes::Digest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The parts of one request body, in order; their concatenation is what is sent and signed.
#[derive(Debug, Clone, Default)]
pub struct PutBody {
    parts: [Bytes; 3],
    /// The SHA-256 of the parts when it was computed ahead.
    sha256: Option<Digest>,
}

impl PutBody {
    /// A body written whole into one buffer.
    pub fn whole(body: Bytes) -> PutBody {
        PutBody { parts: [body, Bytes::new(), Bytes::new()], sha256: None }
    }

    /// A body sent as `head`, then `events`, then `tail`.
    pub fn parts(head: Bytes, events: Bytes, tail: Bytes) -> PutBody {
        PutBody { parts: [head, events, tail], sha256: None }
    }

    /// The body with its SHA-256 computed ahead (`payload_hashes::sha256_each` of the same
    /// parts), so that no attempt hashes it again.
    pub fn with_sha256(self, digest: Digest) -> PutBody {
        debug_assert_eq!(digest, self.hash(), "a digest computed ahead is of other bytes");
        PutBody { sha256: Some(digest), ..self }
    }

    /// The body's length: its `content-length`.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hex SHA-256 of the whole body (SigV4's payload hash): the one computed ahead, else
    /// hashed part after part (the same as hashing the concatenation).
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256.unwrap_or_else(|| self.hash()))
    }

    fn hash(&self) -> Digest {
        let mut hasher = Sha256::new();
        for part in &self.parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// The body as the HTTP client sends it: a body of one buffer as it always was, a body of
    /// several parts as a stream of them whose exact length is known in advance.
    pub fn into_sdk_body(self) -> SdkBody {
        let PutBody { parts, .. } = self;
        match parts {
            [whole, ref events, ref tail] if events.is_empty() && tail.is_empty() => SdkBody::from(whole),
            _ => SdkBody::from_body_1_x(Parts { parts, next: 0 }),
        }
    }

    /// The buffer the head (or the whole body) was written in, to be taken back once every
    /// clone is gone.
    pub fn into_head(self) -> Bytes {
        let [head, ..] = self.parts;
        head
    }
}

/// The buffer behind `buffer`, emptied, for reuse: `None` while another handle to it is alive
/// (never waited for). Emptied before it is taken back, as `Vec::from(BytesMut)` would
/// otherwise copy the whole contents onto themselves.
pub fn reclaim(buffer: Bytes) -> Option<Vec<u8>> {
    let mut buffer = buffer.try_into_mut().ok()?;
    buffer.clear();
    Some(Vec::from(buffer))
}

/// The parts still to be sent, as an http-body 1.x body: one data frame per non-empty part.
struct Parts {
    parts: [Bytes; 3],
    next: usize,
}

impl Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while self.next < self.parts.len() {
            let i = self.next;
            self.next += 1;
            let part = std::mem::take(&mut self.parts[i]);
            if !part.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(part))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.parts[self.next.min(self.parts.len())..].iter().all(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.parts[self.next.min(self.parts.len())..].iter().map(|p| p.len() as u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of a streamed body, as the HTTP client reads it.
    fn collect(body: SdkBody) -> Vec<u8> {
        let mut body = body;
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(body.size_hint().exact(), body.content_length());
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            out.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        out
    }

    #[test]
    fn the_parts_are_sent_and_hashed_as_their_concatenation() {
        let whole = b"{\"logGroupName\":\"g\",\"logEvents\":[{\"timestamp\":1,\"message\":\"m\"}]}";
        let (head, events) = (33, whole.len() - 2);
        let body = PutBody::parts(
            Bytes::from_static(&whole[..head]),
            Bytes::from_static(&whole[head..events]),
            Bytes::from_static(&whole[events..]),
        );
        assert_eq!(body.len(), whole.len());
        assert_eq!(body.sha256_hex(), hex::encode(Sha256::digest(whole)));
        let sdk = body.clone().into_sdk_body();
        assert_eq!(sdk.content_length(), Some(whole.len() as u64));
        assert_eq!(collect(sdk), whole);
        // a retry sends the same bytes again
        assert_eq!(collect(body.into_sdk_body()), whole);
        // one buffer stays a plain in-memory body
        let one = PutBody::whole(Bytes::from_static(whole)).into_sdk_body();
        assert_eq!(one.bytes(), Some(&whole[..]));
        assert_eq!(PutBody::default().sha256_hex(), hex::encode(Sha256::digest(b"")));
    }

    #[test]
    fn a_buffer_comes_back_empty_with_its_capacity_once_no_slice_of_it_is_alive() {
        let mut arena = Vec::with_capacity(4096);
        arena.extend_from_slice(b"frames");
        let (ptr, shared) = (arena.as_ptr(), Bytes::from(arena));
        let slice = shared.slice(1..3);
        let shared = match reclaim(shared) {
            Some(_) => panic!("taken back while a slice was alive"),
            None => slice.clone(),
        };
        drop(slice);
        // only a slice is left now, not the whole: still shared with nothing else
        let back = reclaim(shared).unwrap();
        assert_eq!((back.len(), back.capacity(), back.as_ptr()), (0, 4096, ptr));
    }
}
