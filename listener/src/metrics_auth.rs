//! Who may read `/metrics`, decided the way controller-runtime does it: the scraper's bearer
//! token is checked with a TokenReview, and the user it names must be allowed `get` on the
//! non-resource URL `/metrics` (a SubjectAccessReview). Metrics name tenants' namespaces and
//! clusters, so they are not for whoever reaches the port. Decisions, grants and refusals
//! alike, are remembered for a minute per token (by hash), so a scrape every few seconds costs
//! the API server two requests a minute. A token not seen before costs two reviews sent with
//! the process's credentials, so new tokens are reviewed at a bounded rate, per source address
//! and in all (past it: 429), over a client of their own, not the connections the controllers
//! and leader election use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// How long a decision about a token is remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// At most this many tokens are remembered (a flood of made-up tokens cannot grow it).
const REMEMBERED: usize = 1_024;
/// How long one review may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// New tokens reviewed per second in all, and the burst allowed.
pub const REVIEWS_PER_SECOND: f64 = 5.0;
/// The burst of reviews in all.
pub const REVIEW_BURST: f64 = 20.0;
/// New tokens reviewed per second for one source address, and its burst.
pub const REVIEWS_PER_SOURCE_PER_SECOND: f64 = 1.0;
/// The burst of reviews for one source address.
pub const REVIEW_SOURCE_BURST: f64 = 5.0;
/// Source addresses whose budget is remembered (a flood of addresses cannot grow it).
const SOURCES: usize = 4_096;

/// A token bucket: `rate` per second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// How many reviews of new tokens may start: in all and per source address.
#[derive(Debug)]
pub struct ReviewBudget {
    all: Bucket,
    sources: HashMap<std::net::IpAddr, Bucket>,
}

impl ReviewBudget {
    /// A full budget at `now`.
    pub fn new(now: Instant) -> ReviewBudget {
        ReviewBudget {
            all: Bucket::full(REVIEW_BURST, now),
            sources: HashMap::new(),
        }
    }

    /// Takes one review for `source` at `now`, or says no (and takes nothing).
    pub fn take(&mut self, source: std::net::IpAddr, now: Instant) -> bool {
        self.all.refill(REVIEWS_PER_SECOND, REVIEW_BURST, now);
        if self.sources.len() >= SOURCES && !self.sources.contains_key(&source) {
            // Forget the sources whose budget is full again; if none, the oldest ones.
            self.sources.retain(|_, b| {
                let mut b = *b;
                b.refill(REVIEWS_PER_SOURCE_PER_SECOND, REVIEW_SOURCE_BURST, now);
                b.tokens < REVIEW_SOURCE_BURST
            });
            if self.sources.len() >= SOURCES {
                self.sources.clear();
            }
        }
        let bucket = self
            .sources
            .entry(source)
            .or_insert_with(|| Bucket::full(REVIEW_SOURCE_BURST, now));
        bucket.refill(REVIEWS_PER_SOURCE_PER_SECOND, REVIEW_SOURCE_BURST, now);
        if bucket.tokens < 1.0 || self.all.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.all.tokens -= 1.0;
        true
    }
}

/// Decides who may read a path, through the API server.
pub struct Authorizer {
    client: kube::Client,
    decisions: Mutex<HashMap<[u8; 32], (Instant, Decision)>>,
    budget: Mutex<ReviewBudget>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and allowed.
    Allowed,
    /// Not a valid token.
    Unauthenticated,
    /// A valid token of a user not allowed to read.
    Forbidden,
    /// A new token past the review budget: not reviewed now.
    Throttled,
}

impl Authorizer {
    /// An authorizer asking the API server behind `client`.
    pub fn new(client: kube::Client) -> Arc<Self> {
        Arc::new(Authorizer {
            client,
            decisions: Mutex::new(HashMap::new()),
            budget: Mutex::new(ReviewBudget::new(Instant::now())),
        })
    }

    /// Whether the bearer `token`, sent from `source`, may `get` the non-resource URL `path`.
    pub async fn decide(
        &self,
        token: &str,
        path: &str,
        source: std::net::IpAddr,
    ) -> Result<Decision, kube::Error> {
        let key: [u8; 32] = Sha256::digest(format!("{path} {token}").as_bytes()).into();
        if let Some((at, decision)) = self.lock().get(&key)
            && at.elapsed() < REMEMBER
        {
            return Ok(*decision);
        }
        let allowed = self
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(source, Instant::now());
        if !allowed {
            return Ok(Decision::Throttled);
        }
        let decision = self.review(token, path).await?;
        let mut decisions = self.lock();
        if decisions.len() >= REMEMBERED {
            decisions.retain(|_, (at, _)| at.elapsed() < REMEMBER);
            if decisions.len() >= REMEMBERED {
                decisions.clear();
            }
        }
        decisions.insert(key, (Instant::now(), decision));
        Ok(decision)
    }

    async fn review(&self, token: &str, path: &str) -> Result<Decision, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Decision::Unauthenticated);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(if decided.status.is_some_and(|s| s.allowed) {
            Decision::Allowed
        } else {
            Decision::Forbidden
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, Decision)>> {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `router` answering only requests whose bearer token `authorizer` allows for their path:
/// 401 without a valid token, 403 for a user not allowed, 503 when the API server cannot be
/// asked.
pub fn protect(router: Router, authorizer: Arc<Authorizer>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let authorizer = authorizer.clone();
            async move { guard(&authorizer, req, next).await }
        },
    ))
}

async fn guard(authorizer: &Authorizer, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
        .map(str::to_string);
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    };
    let path = req.uri().path().to_string();
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    match tokio::time::timeout(REVIEW_TIMEOUT, authorizer.decide(&token, &path, source)).await {
        Ok(Ok(Decision::Allowed)) => next.run(req).await,
        Ok(Ok(Decision::Throttled)) => {
            let mut answer = (
                StatusCode::TOO_MANY_REQUESTS,
                "too many new tokens to review; retry later\n",
            )
                .into_response();
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            answer
        }
        Ok(Ok(Decision::Unauthenticated)) => {
            (StatusCode::UNAUTHORIZED, "the token is not valid\n").into_response()
        }
        Ok(Ok(Decision::Forbidden)) => (
            StatusCode::FORBIDDEN,
            format!("not allowed to get {path}\n"),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not review a metrics request");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot review the token now\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot review the token now\n",
        )
            .into_response(),
    }
}

/// A self-signed serving certificate for the metrics listener (`localhost`, the pod's host
/// name), as controller-runtime makes one: scrapers verify the token, not the server.
pub fn self_signed_tls() -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    let names = vec![
        "localhost".to_string(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "metrics".into()),
    ];
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let chain = vec![cert.cert.der().clone()];
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let mut config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a metrics listener is served.
#[derive(Clone)]
pub enum Access {
    /// HTTPS with a self-signed certificate; each request's bearer token reviewed through
    /// the API server behind this client.
    Reviewed(kube::Client),
    /// Plain HTTP, no authentication: development only, and only on a loopback address.
    Open,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Reviewed(_) => "Reviewed",
            Access::Open => "Open",
        })
    }
}

/// The access a metrics listener on `addr` gets: reviewed unless `insecure`, which is refused
/// on an address other than loopback.
pub fn access(
    addr: std::net::SocketAddr,
    insecure: bool,
    client: &kube::Client,
) -> Result<Access, String> {
    match (insecure, addr.ip().is_loopback()) {
        (false, _) => Ok(Access::Reviewed(client.clone())),
        (true, true) => Ok(Access::Open),
        (true, false) => Err(format!(
            "--metrics-insecure serves metrics over plain HTTP without authentication: only on a loopback address, not {addr}"
        )),
    }
}

/// Serves `router` (the metrics) on `addr` with `access`, bounded as an admin listener, until
/// the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    router: Router,
    access: Access,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (router, tls) = match access {
        Access::Open => (router, None),
        Access::Reviewed(client) => {
            let tls = self_signed_tls().map_err(std::io::Error::other)?;
            // Reviews get connections of their own: a burst of them never queues behind, or
            // in front of, the controllers' and leader election's requests.
            let own = match kube::Config::infer().await {
                Ok(config) => kube::Client::try_from(config).unwrap_or(client),
                Err(_) => client,
            };
            (
                protect(router, Authorizer::new(own)),
                Some(tokio_rustls::TlsAcceptor::from(tls)),
            )
        }
    };
    crate::serve(
        listener,
        tls,
        router,
        crate::Limits::ADMIN,
        std::future::pending(),
        Duration::ZERO,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_metrics_are_refused_off_loopback() {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        // A client that is never used: deciding the access asks nothing.
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let loopback = "127.0.0.1:8080".parse().unwrap();
        let anywhere = "0.0.0.0:8080".parse().unwrap();
        assert!(matches!(access(loopback, true, &client), Ok(Access::Open)));
        assert!(matches!(
            access(anywhere, false, &client),
            Ok(Access::Reviewed(_))
        ));
        let refused = access(anywhere, true, &client).unwrap_err();
        assert!(
            refused.contains("--metrics-insecure") && refused.contains("0.0.0.0:8080"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_source_past_its_review_budget_is_answered_429_without_a_review() {
        use tower::ServiceExt as _;
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        // An API server nobody answers at: a review fails (503), a throttled request never
        // gets that far.
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let router = protect(
            Router::new().route("/metrics", axum::routing::get(|| async { "kaas_x 1\n" })),
            Authorizer::new(client),
        );
        let peer: std::net::SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let mut codes = Vec::new();
        for i in 0..8 {
            let mut req = Request::builder()
                .uri("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer made-up-{i}"))
                .body(axum::body::Body::empty())
                .unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let answer = router.clone().oneshot(req).await.unwrap();
            if answer.status() == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(answer.headers()[header::RETRY_AFTER], "1");
            }
            codes.push(answer.status().as_u16());
        }
        let burst = REVIEW_SOURCE_BURST as usize;
        assert!(codes[..burst].iter().all(|c| *c == 503), "{codes:?}");
        assert!(codes[burst..].iter().all(|c| *c == 429), "{codes:?}");
    }

    #[test]
    fn new_tokens_are_reviewed_at_a_bounded_rate_per_source_and_in_all() {
        let start = Instant::now();
        let mut budget = ReviewBudget::new(start);
        let a: std::net::IpAddr = [10, 0, 0, 1].into();
        // One source: its burst, then nothing until a second passes.
        for _ in 0..REVIEW_SOURCE_BURST as usize {
            assert!(budget.take(a, start));
        }
        assert!(!budget.take(a, start));
        assert!(budget.take(a, start + Duration::from_secs(1)));
        // Many sources: the burst in all, then the rate.
        let mut budget = ReviewBudget::new(start);
        let granted = (0..100u8)
            .filter(|i| budget.take([10, 0, 1, *i].into(), start))
            .count();
        assert_eq!(granted, REVIEW_BURST as usize);
        let later = start + Duration::from_secs(2);
        let granted = (100..200u8)
            .filter(|i| budget.take([10, 0, 1, *i].into(), later))
            .count();
        assert_eq!(granted, (2.0 * REVIEWS_PER_SECOND) as usize);
        // A flood of addresses does not grow the memory past its bound.
        let mut budget = ReviewBudget::new(start);
        for i in 0..20_000u32 {
            budget.take(std::net::IpAddr::from(i.to_be_bytes()), start);
        }
        assert!(budget.sources.len() <= SOURCES);
    }

    #[test]
    fn the_self_signed_certificate_loads() {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        assert!(self_signed_tls().is_ok());
    }
}
