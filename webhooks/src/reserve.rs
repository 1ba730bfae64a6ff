//! The writes of tenant policies' status, one writer per policy and replica. Every admitted
//! change that grows a limited resource must be counted in its policy's status before it is
//! allowed. Written one request at a time, each admission would wait for a round trip to the
//! API server and concurrent ones would collide on the policy's `resourceVersion`; instead:
//!
//! - a request the replica's **hold** covers ([`api::tenancy::hold`]: capacity this replica
//!   set aside in the status, counted against the limits) is admitted from memory, and
//!   written as a reservation with the policy's next write (the usage recount, another
//!   request's, at the latest after [`FLUSH`]), the hold shrinking by as much in that write;
//! - any other request waits for the policy's writer, which takes whatever is waiting (the
//!   requests, admissions to write, the usage recount of [`crate::tenancy::keep_usage`]),
//!   gives back its hold, checks the requests in arrival order against the usage and every
//!   other replica's hold, sets aside a share of what is left as its new hold, and writes it
//!   all with one status update conditioned on the version it holds. It keeps the object
//!   its last write returned, so a batch costs one request; on a conflict (another replica, a
//!   spec change) it reads the policy again. A refusal is only given on a policy just read,
//!   never on the kept copy (the limits may have been raised).
//!
//! A hold is returned after [`IDLE`] without admissions, renewed while in use, and dropped by
//! any replica's recount once it expired: a replica that stopped holds nothing for long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::tenancy::hold::{self, HOLD_MARGIN_SECONDS, HOLD_SECONDS};
use api::tenancy::{self, Footprint, Recount, Refusal, Resource};
use api::v1beta1::{Reservation, TenantPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{Notify, mpsc, oneshot};

/// Attempts at writing one batch against concurrent writers before giving up.
const ATTEMPTS: usize = 16;

/// Requests written in one status update at most.
const BATCH: usize = 64;

/// How long an admission from a hold waits, at most, to be written as a reservation.
pub const FLUSH: Duration = Duration::from_secs(1);

/// Admissions from a hold that are written at once when this many wait.
const FLUSH_AT: usize = 256;

/// A hold no admission used for this long is given back.
pub const IDLE: Duration = Duration::from_secs(1);

/// A hold in use is renewed when less than this is left of it.
const RENEW_SECONDS: i64 = 20;

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A change of one cluster, as far as its policies count it.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// What the change adds.
    pub delta: Footprint,
    /// What the cluster uses after it.
    pub target: Footprint,
    /// The cluster's generation after it.
    pub generation: i64,
    /// Machine types whose resources cannot be counted, with where they are named.
    pub uncounted: Vec<(String, String)>,
}

impl Ticket {
    fn reservation(&self, now: &Time) -> Reservation {
        tenancy::reservation(
            &self.namespace,
            &self.name,
            &self.delta,
            &self.target,
            self.generation,
            now,
        )
    }
}

/// Why a request was not written.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A limit would be passed.
    Refused(Refusal),
    /// The API server could not be asked, or kept answering with conflicts.
    Failed(String),
}

/// A policy's status computed anew from what the cache shows (the usage recount).
pub type Recounter = Arc<dyn Fn(&TenantPolicy) -> Recount + Send + Sync>;

enum Op {
    Reserve(Arc<Ticket>),
    Release(Arc<Ticket>),
    Recount(Recounter),
}

/// The answer of one job.
enum Answer {
    Admission(Result<(), Outcome>),
    Recount(Result<Box<(TenantPolicy, Recount)>, String>),
}

enum Reply {
    Admission(oneshot::Sender<Result<(), Outcome>>),
    Recount(oneshot::Sender<Result<(TenantPolicy, Recount), String>>),
}

struct Job {
    op: Op,
    reply: Reply,
}

/// What this replica holds in one policy, in memory.
#[derive(Debug, Default)]
struct Held {
    /// Held and not given to a request yet.
    credit: Footprint,
    /// The resources the policy limited when the hold was written.
    limited: Vec<Resource>,
    /// The policy's generation then: after a spec change the hold is not used.
    generation: Option<i64>,
    /// When the written hold expires.
    expires: Option<Time>,
    /// Admitted from the hold, not written as reservations yet.
    admitted: Vec<Reservation>,
    /// When the first of `admitted` must be written.
    flush_by: Option<Instant>,
    /// When the hold was last taken or used.
    used_at: Option<Instant>,
}

impl Held {
    /// Admits `ticket` from the hold when it covers it, the policy still being at
    /// `generation`, and the hold lasting long enough.
    fn take(&mut self, ticket: &Ticket, generation: Option<i64>, now: &Time) -> bool {
        let lasts = self
            .expires
            .as_ref()
            .is_some_and(|e| e.0 > hold::after(now, HOLD_MARGIN_SECONDS).0);
        let growth = hold::only(&self.limited, &ticket.delta.growth());
        if !lasts
            || generation.is_none()
            || self.generation != generation
            || (!ticket.uncounted.is_empty() && self.limited.iter().any(|r| r.by_machine_type()))
            || !hold::covers(&self.limited, &self.credit, &growth)
        {
            return false;
        }
        self.credit = self.credit - growth;
        self.admitted.push(ticket.reservation(now));
        let at = Instant::now();
        self.used_at = Some(at);
        self.flush_by.get_or_insert(at + FLUSH);
        true
    }

    /// Whether the writer should look again now: the first admission to write (its
    /// deadline), or enough of them.
    fn wake(&self) -> bool {
        self.admitted.len() == 1 || self.admitted.len() >= FLUSH_AT
    }

    /// When the writer has something to do on its own: write what was admitted, give the
    /// hold back, or renew it (also while admissions wait: the hold counts them).
    fn due(&self) -> Option<Instant> {
        if self.admitted.len() >= FLUSH_AT {
            return Some(Instant::now());
        }
        let holding = !self.credit.grows_nothing();
        let idle = holding.then(|| self.used_at.map_or_else(Instant::now, |t| t + IDLE));
        let renew = (holding || !self.admitted.is_empty())
            .then(|| {
                self.expires.as_ref().map(|e| {
                    let left = e.0.duration_since(now().0).as_secs() - RENEW_SECONDS;
                    Instant::now() + Duration::from_secs(left.max(0).unsigned_abs())
                })
            })
            .flatten();
        [idle, renew, self.flush_by].into_iter().flatten().min()
    }
}

/// One policy's writer: what it holds, a wake-up for admissions to write, its queue.
struct Writer {
    held: Mutex<Held>,
    wake: Notify,
}

impl Writer {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A policy's writer and its queue.
type Handle = (Arc<Writer>, mpsc::UnboundedSender<Job>);

/// One writer per policy, started on first use.
pub struct Reserver {
    client: Client,
    holder: String,
    writers: Mutex<HashMap<String, Handle>>,
}

impl std::fmt::Debug for Reserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let writers = self.writers.lock().map(|w| w.len()).unwrap_or_default();
        f.debug_struct("Reserver")
            .field("holder", &self.holder)
            .field("writers", &writers)
            .finish()
    }
}

impl Reserver {
    /// A reserver writing with `client`, holding as this Pod (`POD_NAME`, else the host name)
    /// and process start: a restarted process holds anew, its old hold expires.
    pub fn new(client: Client) -> Reserver {
        let pod = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "kaas-webhooks".into());
        let started = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        Reserver {
            client,
            holder: format!("{pod}-{started}"),
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Who this replica holds as in policies' `status.holds`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Reserves `ticket` in `policy` (as the cache shows it): from this replica's hold when
    /// it covers it, else through the policy's writer; refused when a limit would be passed.
    pub async fn reserve(&self, policy: &TenantPolicy, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        let name = policy.name_any();
        let (writer, jobs) = self.writer(&name);
        let taken = {
            let mut held = writer.held();
            held.take(&ticket, policy.metadata.generation, &now())
                .then(|| held.wake())
        };
        if let Some(wake) = taken {
            if wake {
                writer.wake.notify_one();
            }
            return Ok(());
        }
        admission(&name, &jobs, Op::Reserve(ticket)).await
    }

    /// Gives back what `ticket` reserved in `policy` (a later policy refused the request).
    pub async fn release(&self, policy: &str, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        let (_, jobs) = self.writer(policy);
        admission(policy, &jobs, Op::Release(ticket)).await
    }

    /// Writes `policy`'s status as `recount` computes it from the policy (when it changed):
    /// the policy as written or found, and the recount.
    pub async fn recount(
        &self,
        policy: &str,
        recount: Recounter,
    ) -> Result<(TenantPolicy, Recount), String> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            op: Op::Recount(recount),
            reply: Reply::Recount(reply),
        };
        let (_, jobs) = self.writer(policy);
        if jobs.send(job).is_err() {
            return Err(format!("TenantPolicy {policy}: its writer stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(format!("TenantPolicy {policy}: its writer stopped")))
    }

    /// `policy`'s writer, started on first use.
    fn writer(&self, policy: &str) -> Handle {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        writers
            .entry(policy.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let writer = Arc::new(Writer {
                    held: Mutex::new(Held::default()),
                    wake: Notify::new(),
                });
                let api: Api<TenantPolicy> = Api::all(self.client.clone());
                let who = Who {
                    api,
                    holder: self.holder.clone(),
                    policy: policy.to_string(),
                };
                tokio::spawn(write(who, writer.clone(), rx));
                (writer, tx)
            })
            .clone()
    }
}

async fn admission(policy: &str, jobs: &mpsc::UnboundedSender<Job>, op: Op) -> Result<(), Outcome> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        op,
        reply: Reply::Admission(reply),
    };
    let stopped = || Outcome::Failed(format!("TenantPolicy {policy}: its writer stopped"));
    if jobs.send(job).is_err() {
        return Err(stopped());
    }
    answer.await.unwrap_or_else(|_| Err(stopped()))
}

/// Where a writer writes, as whom.
struct Who {
    api: Api<TenantPolicy>,
    holder: String,
    policy: String,
}

/// The writer of one policy: batches whatever is waiting, keeping the object it last wrote.
async fn write(who: Who, writer: Arc<Writer>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut kept: Option<TenantPolicy> = None;
    loop {
        let due = writer.held().due();
        let mut batch = Vec::new();
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => batch.push(job),
                None => return,
            },
            // Admissions from the hold: look at when they are due.
            _ = writer.wake.notified() => {}
            _ = sleep_until(due) => {}
        }
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            let h = writer.held();
            let nothing = h.due().is_none_or(|t| t > Instant::now());
            drop(h);
            if nothing {
                continue;
            }
        }
        let answers = write_batch(&who, &writer, &batch, &mut kept).await;
        for (job, answer) in batch.into_iter().zip(answers) {
            match (job.reply, answer) {
                (Reply::Admission(tx), Answer::Admission(a)) => {
                    let _ = tx.send(a);
                }
                (Reply::Recount(tx), Answer::Recount(a)) => {
                    let _ = tx.send(a.map(|b| *b));
                }
                _ => {}
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes `batch` to the policy, with what was admitted from the hold and the hold as it
/// should be now: the answer of each job, in order. `kept` is the object the last write
/// returned (None: read it).
async fn write_batch(
    who: &Who,
    writer: &Writer,
    batch: &[Job],
    kept: &mut Option<TenantPolicy>,
) -> Vec<Answer> {
    let policy = &who.policy;
    let requests = batch.iter().any(|j| matches!(j.op, Op::Reserve(_)));
    // Out of memory while this write is under way: admissions meanwhile wait for the writer.
    // The hold is given back when requests wait (they get a new one) or it is idle: then it
    // is out of memory while this write is under way, and admissions meanwhile wait for the
    // writer. Otherwise it is written as it is now, and admissions from it go on meanwhile:
    // the written hold covers what they take until a later write makes them reservations.
    let (credit, admitted, release, expired) = {
        let mut h = writer.held();
        let release = requests || h.used_at.is_none_or(|t| t.elapsed() >= IDLE);
        let credit = if release {
            std::mem::take(&mut h.credit)
        } else {
            h.credit
        };
        h.flush_by = None;
        (
            credit,
            std::mem::take(&mut h.admitted),
            release,
            h.expires.clone(),
        )
    };
    let failed = |m: String| -> Vec<Answer> {
        // The written hold still counts what was taken out: it goes back.
        let mut h = writer.held();
        if release {
            h.credit = h.credit + credit;
        }
        let later = std::mem::replace(&mut h.admitted, admitted.clone());
        h.admitted.extend(later);
        if !h.admitted.is_empty() {
            h.flush_by = Some(Instant::now() + FLUSH);
        }
        batch
            .iter()
            .map(|j| match j.op {
                Op::Recount(_) => Answer::Recount(Err(m.clone())),
                _ => Answer::Admission(Err(Outcome::Failed(m.clone()))),
            })
            .collect()
    };
    for _ in 0..ATTEMPTS {
        let (mut current, fresh) = match kept.take() {
            Some(p) => (p, false),
            None => match who.api.get(policy).await {
                Ok(p) => (p, true),
                Err(e) => return failed(format!("TenantPolicy {policy}: {e}")),
            },
        };
        let now = now();
        let before = current.status.clone();
        // What was admitted from the hold becomes reservations, then the newest recount:
        // the requests stand on the usage the cache shows.
        let mut status = current.status.take().unwrap_or_default();
        let admitted_growth = admitted.iter().fold(Footprint::default(), |a, r| {
            a + Footprint::of_usage(&r.delta)
        });
        status.used = (Footprint::of_usage(&status.used) + admitted_growth).usage();
        status.reservations.extend(admitted.iter().cloned());
        current.status = Some(status);
        let recount = batch.iter().rev().find_map(|j| match &j.op {
            Op::Recount(f) => Some(f(&current)),
            _ => None,
        });
        if let Some(r) = &recount {
            current.status = Some(r.status.clone());
        }
        let (admissions, fitted) = apply(&mut current, &who.holder, batch, &now);
        let refused = admissions
            .iter()
            .any(|a| matches!(a, Some(Err(Outcome::Refused(_)))));
        // The hold from now on: after requests, a share of what is left (none near a
        // limit); else kept while in use.
        let held = if requests {
            if fitted && !refused {
                let status = current.status.as_ref().cloned().unwrap_or_default();
                let committed = Footprint::of_usage(&status.used)
                    + hold::held_by_others(&status, &who.holder, &now);
                hold::spare(&current, &committed)
            } else {
                Footprint::default()
            }
        } else if release {
            Footprint::default()
        } else {
            credit
        };
        // The written expiry stays unless the hold changes or is due for renewal.
        let renew_by = hold::after(&now, RENEW_SECONDS);
        let expires = match &expired {
            Some(e) if held == credit && e.0 > renew_by.0 => e.clone(),
            _ => hold::after(&now, HOLD_SECONDS),
        };
        if let Some(status) = current.status.as_mut() {
            hold::set_hold(&mut status.holds, &who.holder, &held, &expires, &now);
        }
        let changed = current.status != before;
        if !fresh && (refused || !changed) {
            // Nothing written would prove the kept copy current: read it and decide again.
            continue;
        }
        let written = if changed {
            match who
                .api
                .replace_status(policy, &PostParams::default(), &current)
                .await
            {
                Ok(written) => written,
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return failed(format!("TenantPolicy {policy}: {e}")),
            }
        } else {
            current
        };
        {
            let mut h = writer.held();
            if release {
                h.credit = held;
            }
            h.limited = hold::limited(&written);
            h.generation = written.metadata.generation;
            h.expires = Some(expires);
            if requests {
                h.used_at = Some(Instant::now());
            }
        }
        *kept = Some(written.clone());
        return admissions
            .into_iter()
            .map(|a| match a {
                Some(a) => Answer::Admission(a),
                None => Answer::Recount(Ok(Box::new((
                    written.clone(),
                    recount.clone().unwrap_or_default(),
                )))),
            })
            .collect();
    }
    failed(format!(
        "TenantPolicy {policy}: its usage changed under {ATTEMPTS} attempts in a row; try again"
    ))
}

/// The requests of `batch` applied to `policy`'s status in order, against its usage and the
/// holds of the other replicas (`holder`'s own is given back first): each request's answer
/// (None for a recount), and whether any request was admitted.
fn apply(
    policy: &mut TenantPolicy,
    holder: &str,
    batch: &[Job],
    now: &Time,
) -> (Vec<Option<Result<(), Outcome>>>, bool) {
    let mut status = policy.status.clone().unwrap_or_default();
    let mut used = Footprint::of_usage(&status.used);
    let others = hold::held_by_others(&status, holder, now);
    let mut answers = Vec::with_capacity(batch.len());
    let mut fitted = false;
    for job in batch {
        match &job.op {
            Op::Recount(_) => answers.push(None),
            Op::Reserve(t) => {
                match tenancy::check_limits(
                    policy,
                    &t.namespace,
                    &(used + others),
                    &t.delta,
                    &t.uncounted,
                ) {
                    Err(mut refusal) => {
                        if !others.grows_nothing() {
                            refusal.0.push_str(
                                " (other kaas-webhooks replicas hold part of it for admissions in flight: a retry in a few seconds may fit)",
                            );
                        }
                        answers.push(Some(Err(Outcome::Refused(refusal))))
                    }
                    Ok(()) => {
                        used = used + t.delta.growth();
                        status.reservations.push(t.reservation(now));
                        fitted = true;
                        answers.push(Some(Ok(())));
                    }
                }
            }
            Op::Release(t) => {
                let target = t.target.usage();
                if let Some(i) = status.reservations.iter().rposition(|r| {
                    r.namespace == t.namespace && r.name == t.name && r.target == target
                }) {
                    status.reservations.remove(i);
                    used = used - t.delta.growth();
                }
                answers.push(Some(Ok(())));
            }
        }
    }
    status.used = used.usage();
    policy.status = Some(status);
    (answers, fitted)
}
