//! Dynamic micro-batching: concurrent requests' texts are queued, and each worker thread takes what is
//! waiting (up to `max_batch` texts, waiting at most `max_wait` for more) into one core call, which groups
//! them by length. The queue is bounded in texts: a full queue refuses new work at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akidb_core::{Embedder, Embeddings, Tokens};
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// Batching and queue settings.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Most texts in one core call.
    pub max_batch: usize,
    /// Longest a worker waits for more texts once it holds some.
    pub max_wait: Duration,
    /// Most texts queued and not yet taken by a worker.
    pub queue_capacity: usize,
    /// Worker threads, each running one core call at a time.
    pub workers: usize,
}

struct Job {
    tokens: Vec<Tokens>,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Embeddings, String>>,
}

/// The queue could not take the request.
#[derive(Debug)]
pub struct Overloaded;

/// Handle to the queue and its workers. Dropping every handle lets the workers finish what is queued and exit.
#[derive(Clone)]
pub struct Batcher {
    queue: Sender<Job>,
    queued_texts: Arc<AtomicUsize>,
    capacity: usize,
}

impl Batcher {
    /// Starts `options.workers` threads over `embedder`.
    pub fn start(embedder: Arc<Embedder>, options: BatchOptions, metrics: Arc<Metrics>) -> Batcher {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let queued_texts = Arc::new(AtomicUsize::new(0));
        for i in 0..options.workers.max(1) {
            let (jobs, embedder, metrics, queued) = (
                jobs.clone(),
                embedder.clone(),
                metrics.clone(),
                queued_texts.clone(),
            );
            let options = options.clone();
            std::thread::Builder::new()
                .name(format!("akidb-embed-{i}"))
                .spawn(move || worker(&jobs, &embedder, &options, &metrics, &queued))
                .expect("spawn embedding worker");
        }
        Batcher {
            queue,
            queued_texts,
            capacity: options.queue_capacity,
        }
    }

    /// Queues `tokens` for embedding; the receiver gets one vector per text, in order.
    pub fn submit(
        &self,
        tokens: Vec<Tokens>,
    ) -> Result<oneshot::Receiver<Result<Embeddings, String>>, Overloaded> {
        let n = tokens.len();
        let admitted = self
            .queued_texts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + n <= self.capacity).then_some(q + n)
            });
        if admitted.is_err() {
            return Err(Overloaded);
        }
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            tokens,
            queued_at: Instant::now(),
            reply,
        };
        if self.queue.send(job).is_err() {
            self.queued_texts.fetch_sub(n, Ordering::AcqRel);
            return Err(Overloaded);
        }
        Ok(receiver)
    }
}

/// Takes the next batch off the queue: blocks for a first job, then gathers more until `max_batch`
/// texts or `max_wait`. `None` once the queue is closed and empty.
fn next_batch(jobs: &Mutex<Receiver<Job>>, options: &BatchOptions) -> Option<Vec<Job>> {
    let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
    let first = jobs.recv().ok()?;
    let mut texts = first.tokens.len();
    let mut batch = vec![first];
    let deadline = Instant::now() + options.max_wait;
    while texts < options.max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(left) {
            Ok(job) => {
                texts += job.tokens.len();
                batch.push(job);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

fn worker(
    jobs: &Mutex<Receiver<Job>>,
    embedder: &Embedder,
    options: &BatchOptions,
    metrics: &Metrics,
    queued: &AtomicUsize,
) {
    while let Some(batch) = next_batch(jobs, options) {
        let started = Instant::now();
        let texts: usize = batch.iter().map(|j| j.tokens.len()).sum();
        queued.fetch_sub(texts, Ordering::AcqRel);
        for job in &batch {
            metrics
                .queue_wait
                .observe(started.duration_since(job.queued_at).as_secs_f64());
        }
        // Requests whose client has gone (timeout, disconnect) are not worth computing.
        let live: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
        let tokens: Vec<Tokens> = live.iter().flat_map(|j| j.tokens.iter().cloned()).collect();
        if tokens.is_empty() {
            continue;
        }
        metrics.batch_size.observe(tokens.len() as f64);
        metrics
            .tokens
            .inc_by(tokens.iter().map(|t| t.ids.len() as u64).sum());
        match embedder.embed_tokens(&tokens) {
            Ok(all) => {
                let dim = all.dim();
                let data = all.into_vec();
                let mut offset = 0;
                for job in live {
                    let n = job.tokens.len();
                    let rows = Embeddings::from_vec(dim, data[offset * dim..(offset + n) * dim].to_vec());
                    offset += n;
                    let _ = job.reply.send(Ok(rows));
                }
            }
            Err(e) => {
                for job in live {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
