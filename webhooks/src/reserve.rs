//! The writes of tenant policies' status, one writer per policy. Every admitted change that
//! grows a limited resource must be written to its policy's status before it is allowed;
//! written one by one, concurrent requests would mostly collide on the policy's
//! `resourceVersion` and retry. Instead the writer of a policy takes whatever is waiting (the
//! reservations of requests, the usage recount of [`crate::tenancy::keep_usage`]), applies the
//! newest recount and then the requests in arrival order against the usage as it grows, and
//! writes them all with one status update conditioned on the version it holds. It keeps the
//! object its last write returned, so a batch costs one request; on a conflict (another
//! replica, a spec change) it reads the policy again. A refusal, which writes nothing, is only
//! given on a policy just read, never on the kept copy (the limits may have been raised).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::tenancy::{self, Footprint, Recount, Refusal};
use api::v1beta1::TenantPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::{mpsc, oneshot};

/// Attempts at writing one batch against concurrent writers before giving up.
const ATTEMPTS: usize = 16;

/// Requests written in one status update at most.
const BATCH: usize = 64;

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

/// One writer per policy, started on first use.
pub struct Reserver {
    client: Client,
    writers: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
}

impl std::fmt::Debug for Reserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let writers = self.writers.lock().map(|w| w.len()).unwrap_or_default();
        f.debug_struct("Reserver")
            .field("writers", &writers)
            .finish()
    }
}

impl Reserver {
    /// A reserver writing with `client`.
    pub fn new(client: Client) -> Reserver {
        Reserver {
            client,
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves `ticket` in `policy`: refused when a limit would be passed.
    pub async fn reserve(&self, policy: &str, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        self.admission(policy, Op::Reserve(ticket)).await
    }

    /// Gives back what `ticket` reserved in `policy` (a later policy refused the request).
    pub async fn release(&self, policy: &str, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        self.admission(policy, Op::Release(ticket)).await
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
        if !self.send(policy, job) {
            return Err(format!("TenantPolicy {policy}: its writer stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(format!("TenantPolicy {policy}: its writer stopped")))
    }

    async fn admission(&self, policy: &str, op: Op) -> Result<(), Outcome> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            op,
            reply: Reply::Admission(reply),
        };
        let stopped = || Outcome::Failed(format!("TenantPolicy {policy}: its writer stopped"));
        if !self.send(policy, job) {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Hands `job` to `policy`'s writer, started on first use; false when it stopped.
    fn send(&self, policy: &str, job: Job) -> bool {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let writer = writers.entry(policy.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write(self.client.clone(), policy.to_string(), rx));
            tx
        });
        writer.send(job).is_ok()
    }
}

/// The writer of one policy: batches whatever is waiting, keeping the object it last wrote.
async fn write(client: Client, policy: String, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let api: Api<TenantPolicy> = Api::all(client);
    let mut kept: Option<TenantPolicy> = None;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers = write_batch(&api, &policy, &batch, &mut kept).await;
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

/// Writes `batch` to `policy`: the answer of each job, in order. `kept` is the object the
/// last write returned (None: read it).
async fn write_batch(
    api: &Api<TenantPolicy>,
    policy: &str,
    batch: &[Job],
    kept: &mut Option<TenantPolicy>,
) -> Vec<Answer> {
    let failed = |m: String| -> Vec<Answer> {
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
            None => match api.get(policy).await {
                Ok(p) => (p, true),
                Err(e) => return failed(format!("TenantPolicy {policy}: {e}")),
            },
        };
        let before = current.status.clone();
        // The newest recount first: the requests then stand on the usage the cache shows.
        let recount = batch.iter().rev().find_map(|j| match &j.op {
            Op::Recount(f) => Some(f(&current)),
            _ => None,
        });
        if let Some(r) = &recount {
            current.status = Some(r.status.clone());
        }
        let admissions = apply(&mut current, batch);
        let refused = admissions
            .iter()
            .any(|a| matches!(a, Some(Err(Outcome::Refused(_)))));
        let changed = current.status != before;
        if !fresh && (refused || !changed) {
            // Nothing written would prove the kept copy current: read it and decide again.
            continue;
        }
        let written = if changed {
            match api
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

/// The requests of `batch` applied to `policy`'s status in order: each request's answer
/// (None for a recount).
fn apply(policy: &mut TenantPolicy, batch: &[Job]) -> Vec<Option<Result<(), Outcome>>> {
    let mut status = policy.status.clone().unwrap_or_default();
    let mut used = Footprint::of_usage(&status.used);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        match &job.op {
            Op::Recount(_) => answers.push(None),
            Op::Reserve(t) => {
                match tenancy::check_limits(policy, &t.namespace, &used, &t.delta, &t.uncounted) {
                    Err(refusal) => answers.push(Some(Err(Outcome::Refused(refusal)))),
                    Ok(()) => {
                        used = used + t.delta.growth();
                        status.reservations.push(tenancy::reservation(
                            &t.namespace,
                            &t.name,
                            &t.delta,
                            &t.target,
                            t.generation,
                            &now,
                        ));
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
    answers
}
