//! Trust boundary of every read from a workload cluster: bounded in bytes, time and items.
//!
//! A tenant administers its workload cluster and owns its endpoint, and one operator serves
//! every tenant of its provider. kube's client reads a reply body whole and its read timeout
//! trips only on silence, so a few thousand large Nodes, or an endpoint that streams a list
//! that never ends, would grow the operator until it is killed, again on every resync. So
//! the client of a workload cluster is built with [`Bounded`]:
//!
//! - every reply is counted as it streams and refused past [`MAX_REPLY`] bytes (a declared
//!   `Content-Length` past it is refused before a byte is read);
//! - every request, headers and body, ends within [`DEADLINE`];
//! - lists go page by page ([`PAGE`] items asked for), each page folded into what the caller
//!   keeps before the next is read, and stop past a bound on items ([`list`]).
//!
//! So what one cluster in flight costs is at most one reply and its decoded page, whatever its
//! API server answers; a refusal says which resource of the cluster, and other clusters are
//! served meanwhile (nothing here is shared between clients).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use kube::api::{Api, ListParams};
use kube::client::{Body, ClientBuilder, DynBody};
use serde::de::DeserializeOwned;
use tower::{BoxError, Layer, Service};

/// The most one reply from a workload API server may weigh. A page of [`PAGE`] Nodes is
/// about 2 MiB even with long image lists; one object is at most 1.5 MiB (etcd's limit).
pub const MAX_REPLY: usize = 4 * 1024 * 1024;
/// How long one request may take in all, its reply's body included.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Items asked for per page of a list.
pub const PAGE: u32 = 100;
/// Nodes read from a workload cluster at most (Kubernetes supports 5,000 per cluster).
pub const MAX_NODES: usize = 5_000;
/// StorageClasses read from a workload cluster at most.
pub const MAX_STORAGE_CLASSES: usize = 500;

/// Why a reply was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cut {
    /// The reply passed the byte bound.
    #[error("the workload API server's reply is larger than {}", size(.0))]
    TooLarge(usize),
    /// The request passed the deadline.
    #[error("the workload API server did not answer in full within {} s", .0.as_secs())]
    TooSlow(Duration),
}

/// `n` bytes for a message: in MiB when whole.
fn size(n: &usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// The bounds a workload cluster's client applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes per reply.
    pub max_reply: usize,
    /// Time per request.
    pub deadline: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_reply: MAX_REPLY,
            deadline: DEADLINE,
        }
    }
}

/// A client of a workload cluster from `config`, with `bounds` on every request.
pub fn client(config: kube::Config, bounds: Bounds) -> Result<kube::Client, kube::Error> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&BoundedLayer(bounds))
        .build())
}

/// The layer of [`Bounded`].
#[derive(Debug, Clone, Copy)]
pub struct BoundedLayer(pub Bounds);

impl<S> Layer<S> for BoundedLayer {
    type Service = Bounded<S>;
    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            bounds: self.0,
        }
    }
}

/// A service whose replies are [`Capped`] and whose requests end by a deadline.
#[derive(Debug, Clone)]
pub struct Bounded<S> {
    inner: S,
    bounds: Bounds,
}

type Answer = Result<Response<Capped>, BoxError>;

impl<S> Service<Request<Body>> for Bounded<S>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Capped>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let bounds = self.bounds;
        let deadline = tokio::time::Instant::now() + bounds.deadline;
        let reply = self.inner.call(request);
        Box::pin(async move {
            let reply = tokio::time::timeout_at(deadline, reply)
                .await
                .map_err(|_| Cut::TooSlow(bounds.deadline))??;
            let declared = reply
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > bounds.max_reply as u64) {
                return Err(Cut::TooLarge(bounds.max_reply).into());
            }
            Ok(reply.map(|inner| Capped {
                inner,
                read: 0,
                bounds,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
            }))
        })
    }
}

/// A reply body counted as it streams: an error past the byte bound or the deadline.
pub struct Capped {
    inner: Box<DynBody>,
    read: usize,
    bounds: Bounds,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl std::fmt::Debug for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capped").field("read", &self.read).finish()
    }
}

impl HttpBody for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Cut::TooSlow(this.bounds.deadline).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.read += frame.data_ref().map_or(0, Bytes::len);
                if this.read > this.bounds.max_reply {
                    Poll::Ready(Some(Err(Cut::TooLarge(this.bounds.max_reply).into())))
                } else {
                    Poll::Ready(Some(Ok(frame)))
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Lists `api` page by page, folding each item with `keep` before the next page is read;
/// refused past `max` items. `what` names the resource in messages ("Nodes").
pub async fn list<K, T>(
    api: &Api<K>,
    what: &str,
    max: usize,
    keep: impl Fn(K) -> T,
) -> Result<Vec<T>, String>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut kept = Vec::new();
    let mut next: Option<String> = None;
    // A server that answers empty pages with a continue token forever stops here too.
    let most_pages = max / PAGE as usize + 2;
    for _ in 0..most_pages {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(token) = next.take() {
            params = params.continue_token(&token);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|e| format!("listing the workload cluster's {what}: {e}"))?;
        if kept.len() + page.items.len() > max {
            return Err(format!(
                "listing the workload cluster's {what}: it has more than {max}, the most the operator reads"
            ));
        }
        kept.extend(page.items.into_iter().map(&keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => next = Some(token),
            None => return Ok(kept),
        }
    }
    Err(format!(
        "listing the workload cluster's {what}: more than {most_pages} pages"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn capped(chunks: Vec<&'static [u8]>, bounds: Bounds) -> Capped {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
        );
        let body: Box<DynBody> = Box::new(http_body_util::StreamBody::new(stream));
        Capped {
            inner: body,
            read: 0,
            bounds,
            deadline: Box::pin(tokio::time::sleep(bounds.deadline)),
        }
    }

    #[tokio::test]
    async fn a_reply_past_the_bound_is_refused_and_one_at_it_is_read() {
        let bounds = Bounds {
            max_reply: 8,
            deadline: Duration::from_secs(5),
        };
        let ok = capped(vec![b"1234", b"5678"], bounds).collect().await;
        assert_eq!(ok.ok().map(|c| c.to_bytes()), Some(Bytes::from("12345678")));
        let err = capped(vec![b"1234", b"5678", b"9"], bounds)
            .collect()
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the workload API server's reply is larger than 8 bytes")
        );
    }

    #[tokio::test]
    async fn a_body_that_never_ends_is_cut_at_the_deadline() {
        let bounds = Bounds {
            max_reply: MAX_REPLY,
            deadline: Duration::from_secs(1),
        };
        let endless = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))), ()))
        });
        let body = Capped {
            inner: Box::new(http_body_util::StreamBody::new(Box::pin(endless))),
            read: 0,
            bounds,
            deadline: Box::pin(tokio::time::sleep(bounds.deadline)),
        };
        let err = body.collect().await.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the workload API server did not answer in full within 1 s")
        );
    }
}
