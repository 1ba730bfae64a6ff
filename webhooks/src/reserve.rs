//! The writes of tenant policies' reservations, batched per policy. Every admitted change
//! that grows a limited resource must be written to its policy's status before it is allowed;
//! written one by one, concurrent requests would mostly collide on the policy's
//! `resourceVersion` and retry. Instead one writer per policy takes whatever requests are
//! waiting, reads the policy once, checks them in arrival order against the usage as it grows,
//! and writes them all with one status update conditioned on the version it read (retried from
//! the read on a conflict with another writer: another replica, the usage recount). Each
//! request then gets its own answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::tenancy::{self, Footprint, Refusal};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Reserve,
    Release,
}

struct Job {
    op: Op,
    ticket: Arc<Ticket>,
    reply: oneshot::Sender<Result<(), Outcome>>,
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
        self.send(policy, Op::Reserve, ticket).await
    }

    /// Gives back what `ticket` reserved in `policy` (a later policy refused the request).
    pub async fn release(&self, policy: &str, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        self.send(policy, Op::Release, ticket).await
    }

    async fn send(&self, policy: &str, op: Op, ticket: Arc<Ticket>) -> Result<(), Outcome> {
        let (reply, answer) = oneshot::channel();
        let job = Job { op, ticket, reply };
        let sent = {
            let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
            let writer = writers.entry(policy.to_string()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write(self.client.clone(), policy.to_string(), rx));
                tx
            });
            writer.send(job)
        };
        if sent.is_err() {
            return Err(Outcome::Failed(format!(
                "TenantPolicy {policy}: its writer stopped"
            )));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Outcome::Failed(format!(
                "TenantPolicy {policy}: its writer stopped"
            )))
        })
    }
}

/// The writer of one policy: batches whatever is waiting.
async fn write(client: Client, policy: String, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let api: Api<TenantPolicy> = Api::all(client);
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers = write_batch(&api, &policy, &batch).await;
        for (job, answer) in batch.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// Writes `batch` to `policy`: the answer of each job, in order.
async fn write_batch(
    api: &Api<TenantPolicy>,
    policy: &str,
    batch: &[Job],
) -> Vec<Result<(), Outcome>> {
    let all_failed = |m: String| vec![Err(Outcome::Failed(m)); batch.len()];
    for _ in 0..ATTEMPTS {
        let mut current = match api.get(policy).await {
            Ok(p) => p,
            Err(e) => return all_failed(format!("TenantPolicy {policy}: {e}")),
        };
        let (answers, changed) = apply(&mut current, batch);
        if !changed {
            return answers;
        }
        match api
            .replace_status(policy, &PostParams::default(), &current)
            .await
        {
            Ok(_) => return answers,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return all_failed(format!("TenantPolicy {policy}: {e}")),
        }
    }
    all_failed(format!(
        "TenantPolicy {policy}: its usage changed under {ATTEMPTS} attempts in a row; try again"
    ))
}

/// `batch` applied to `policy`'s status in order: each job's answer, and whether anything
/// changed.
fn apply(policy: &mut TenantPolicy, batch: &[Job]) -> (Vec<Result<(), Outcome>>, bool) {
    let mut status = policy.status.clone().unwrap_or_default();
    let mut used = Footprint::of_usage(&status.used);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut changed = false;
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let t = &job.ticket;
        match job.op {
            Op::Reserve => {
                match tenancy::check_limits(policy, &t.namespace, &used, &t.delta, &t.uncounted) {
                    Err(refusal) => answers.push(Err(Outcome::Refused(refusal))),
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
                        changed = true;
                        answers.push(Ok(()));
                    }
                }
            }
            Op::Release => {
                let target = t.target.usage();
                if let Some(i) = status.reservations.iter().rposition(|r| {
                    r.namespace == t.namespace && r.name == t.name && r.target == target
                }) {
                    status.reservations.remove(i);
                    used = used - t.delta.growth();
                    changed = true;
                }
                answers.push(Ok(()));
            }
        }
    }
    status.used = used.usage();
    policy.status = Some(status);
    (answers, changed)
}
