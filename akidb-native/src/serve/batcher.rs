//! Dynamic micro-batching: concurrent requests' texts are queued one by one, and each worker thread takes
//! what is waiting (at most `max_batch` texts) into one core call, which groups them by length. The queue
//! is bounded in texts: a full queue refuses new work at once.
//!
//! Texts are queued as text and tokenised by the worker that embeds them, so no tokenisation runs on the
//! async runtime. A request's texts are separate jobs: a request of 256 texts runs as batches of at most
//! `max_batch` on every worker, and texts whose request has gone (client disconnected, or timed out) are
//! dropped when a worker reaches them rather than computed for nobody.
//!
//! A free worker takes its share of the queue at once — the queued texts split evenly over the idle
//! workers, at most `max_batch` — rather than all of it: a burst of 8 on two idle workers runs as two
//! batches of 4 on two cores instead of one batch of 8 on one. Batches grow by themselves under load,
//! from what queues while the workers are busy; `max_wait` (default 0) makes a worker also wait for more.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akidb_core::Embedder;
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// Batching and queue settings.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Most texts in one core call.
    pub max_batch: usize,
    /// Longest a worker waits for more texts once it has taken its share of the queue (zero: never).
    pub max_wait: Duration,
    /// Most texts queued and not yet taken by a worker.
    pub queue_capacity: usize,
    /// Worker threads, each running one core call at a time.
    pub workers: usize,
    /// Most tokens (special tokens included) in one core call: a batch over it runs as several calls.
    /// Bounds a GPU batch's activation memory and its time on the device.
    pub max_tokens: usize,
}

impl BatchOptions {
    /// The CPU's defaults: one worker per core, batches of at most 32 formed from what queues while the
    /// workers are busy (no waiting), no token budget beyond `max_batch` × the longest sequence.
    pub fn cpu() -> BatchOptions {
        BatchOptions {
            max_batch: 32,
            max_wait: Duration::ZERO,
            queue_capacity: 2048,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_tokens: usize::MAX,
        }
    }

    /// A GPU's defaults: a GPU is efficient only on large batches, so they may grow to 256 texts and a
    /// worker waits up to 2 ms for more; 32768 tokens per call (a full batch of 128-token texts); two
    /// workers, so that one tokenises and pools on the CPU while the other's batch is on the GPU, each on
    /// its own CUDA stream. Measured on an H200 (2026-12-04, scripts/gpu/README.md): a batch of 32 to
    /// 128 short texts takes 14-16 ms, 256 take 21 ms (12,300 texts/s), 512 take 29 ms (17,900/s) and
    /// 1024 49 ms (20,800/s), so 256 keeps a full batch near 20 ms; `--max-batch 1024` trades 2.4× the
    /// batch time for 1.7× the throughput under more than 256 concurrent requests. At 64 clients no
    /// batch filled (mean 29-36 texts), so the limit was not what bounded serve's QPS.
    pub fn gpu() -> BatchOptions {
        BatchOptions {
            max_batch: 256,
            max_wait: Duration::from_millis(2),
            queue_capacity: 4096,
            workers: 2,
            max_tokens: 32_768,
        }
    }
}

/// Splits a batch's token counts, in order, into runs of at most `max_tokens` tokens each (a single text
/// over the budget runs alone); returns the end index of each run.
fn token_runs(lens: &[usize], max_tokens: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut sum = 0usize;
    for (i, &len) in lens.iter().enumerate() {
        if sum > 0 && sum.saturating_add(len) > max_tokens {
            ends.push(i);
            sum = 0;
        }
        sum = sum.saturating_add(len);
    }
    if !lens.is_empty() {
        ends.push(lens.len());
    }
    ends
}

/// One text's answer: its vector and its token count (special tokens included).
#[derive(Debug)]
pub struct Embedded {
    /// The L2-normalised vector.
    pub vector: Vec<f32>,
    /// Tokens the model saw for this text.
    pub tokens: usize,
}

/// Why a text got no vector.
#[derive(Debug)]
pub enum JobError {
    /// The text could not be tokenised (the client's input).
    Input(String),
    /// The model call failed.
    Model(String),
}

/// The worker's answer for one text.
pub type Reply = oneshot::Receiver<Result<Embedded, JobError>>;

struct Job {
    text: String,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Embedded, JobError>>,
}

/// The queue could not take the request.
#[derive(Debug)]
pub struct Overloaded;

/// Handle to the queue and its workers. Dropping every handle lets the workers finish what is queued and exit.
#[derive(Clone)]
pub struct Batcher {
    queue: Sender<Job>,
    counts: Arc<Counts>,
    capacity: usize,
}

/// What the workers share besides the queue.
#[derive(Default)]
struct Counts {
    /// Texts submitted and not yet taken by a worker.
    queued_texts: AtomicUsize,
    /// Workers waiting for work.
    idle_workers: AtomicUsize,
}

impl Batcher {
    /// Starts `options.workers` threads over `embedder`.
    pub fn start(embedder: Arc<Embedder>, options: BatchOptions, metrics: Arc<Metrics>) -> Batcher {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let counts = Arc::new(Counts::default());
        for i in 0..options.workers.max(1) {
            let (jobs, embedder, metrics, counts) =
                (jobs.clone(), embedder.clone(), metrics.clone(), counts.clone());
            let options = options.clone();
            std::thread::Builder::new()
                .name(format!("akidb-embed-{i}"))
                .spawn(move || worker(&jobs, &embedder, &options, &metrics, &counts))
                .expect("spawn embedding worker");
        }
        Batcher {
            queue,
            counts,
            capacity: options.queue_capacity,
        }
    }

    /// Queues `texts` for embedding, all or none: one receiver per text, in order.
    pub fn submit(&self, texts: Vec<String>) -> Result<Vec<Reply>, Overloaded> {
        let n = texts.len();
        let admitted = self
            .counts
            .queued_texts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + n <= self.capacity).then_some(q + n)
            });
        if admitted.is_err() {
            return Err(Overloaded);
        }
        let queued_at = Instant::now();
        let mut receivers = Vec::with_capacity(n);
        for (i, text) in texts.into_iter().enumerate() {
            let (reply, receiver) = oneshot::channel();
            let job = Job {
                text,
                queued_at,
                reply,
            };
            if self.queue.send(job).is_err() {
                // The workers are gone (shutdown): un-count what was not sent.
                self.counts.queued_texts.fetch_sub(n - i, Ordering::AcqRel);
                return Err(Overloaded);
            }
            receivers.push(receiver);
        }
        Ok(receivers)
    }
}

/// Takes the next batch off the queue: blocks for a first job, then takes its share of what is queued
/// (see the module doc) and, with a `max_wait`, waits up to that long for more, up to `max_batch` texts.
/// `None` once the queue is closed and empty.
fn next_batch(jobs: &Mutex<Receiver<Job>>, options: &BatchOptions, counts: &Counts) -> Option<Vec<Job>> {
    counts.idle_workers.fetch_add(1, Ordering::AcqRel);
    let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
    let first = jobs.recv();
    // This worker and those still waiting for the lock.
    let idle = counts.idle_workers.fetch_sub(1, Ordering::AcqRel).max(1);
    let first = first.ok()?;
    let share = counts
        .queued_texts
        .load(Ordering::Acquire)
        .div_ceil(idle)
        .clamp(1, options.max_batch);
    let mut batch = vec![first];
    while batch.len() < share {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + options.max_wait;
    while batch.len() < options.max_batch && !options.max_wait.is_zero() {
        let left = deadline.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(left) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    // Under the lock, so the next worker's share counts only what is really left.
    counts.queued_texts.fetch_sub(batch.len(), Ordering::AcqRel);
    Some(batch)
}

fn worker(
    jobs: &Mutex<Receiver<Job>>,
    embedder: &Embedder,
    options: &BatchOptions,
    metrics: &Metrics,
    counts: &Counts,
) {
    while let Some(batch) = next_batch(jobs, options, counts) {
        let started = Instant::now();
        for job in &batch {
            metrics
                .queue_wait
                .observe(started.duration_since(job.queued_at).as_secs_f64());
        }
        // Texts whose request has gone (timeout, disconnect) are not worth computing.
        let mut live = Vec::with_capacity(batch.len());
        let mut tokens = Vec::with_capacity(batch.len());
        for job in batch {
            if job.reply.is_closed() {
                continue;
            }
            match embedder.tokenize(&[job.text.as_str()]) {
                Ok(mut t) => {
                    tokens.push(t.pop().expect("one text, one tokenisation"));
                    live.push(job);
                }
                Err(e) => {
                    let _ = job.reply.send(Err(JobError::Input(e.to_string())));
                }
            }
        }
        if tokens.is_empty() {
            continue;
        }
        #[cfg(feature = "test-hooks")]
        super::test_hooks::hold_batch();
        metrics.batch_size.observe(tokens.len() as f64);
        metrics
            .tokens
            .inc_by(tokens.iter().map(|t| t.ids.len() as u64).sum());
        let lens: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
        let mut live = live.into_iter();
        let mut start = 0;
        for end in token_runs(&lens, options.max_tokens) {
            let (run, jobs) = (&tokens[start..end], live.by_ref().take(end - start));
            start = end;
            match embedder.embed_tokens(run) {
                Ok(all) => {
                    for ((job, row), t) in jobs.zip(all.rows()).zip(run) {
                        let _ = job.reply.send(Ok(Embedded {
                            vector: row.to_vec(),
                            tokens: t.ids.len(),
                        }));
                    }
                }
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(JobError::Model(e.to_string())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_batch: usize, max_wait: Duration) -> BatchOptions {
        BatchOptions {
            max_batch,
            max_wait,
            queue_capacity: 1024,
            workers: 2,
            max_tokens: usize::MAX,
        }
    }

    #[test]
    fn a_batch_over_the_token_budget_runs_in_several_calls() {
        assert_eq!(token_runs(&[10, 10, 10, 10], 20), vec![2, 4]);
        assert_eq!(token_runs(&[10, 10, 10], 25), vec![2, 3]);
        // A text over the budget on its own still runs, alone.
        assert_eq!(token_runs(&[5, 300, 5], 100), vec![1, 2, 3]);
        assert_eq!(token_runs(&[7; 4], usize::MAX), vec![4]);
        assert!(token_runs(&[], 10).is_empty());
    }

    /// A job queue and the receiving end the workers share.
    fn job_queue() -> (Sender<Job>, Mutex<Receiver<Job>>) {
        let (queue, jobs) = mpsc::channel();
        (queue, Mutex::new(jobs))
    }

    /// Queues `n` one-text jobs the way `Batcher::submit` does.
    fn queue_jobs(queue: &Sender<Job>, counts: &Counts, n: usize) {
        for _ in 0..n {
            let (reply, _) = oneshot::channel();
            counts.queued_texts.fetch_add(1, Ordering::AcqRel);
            queue
                .send(Job {
                    text: "a text".to_owned(),
                    queued_at: Instant::now(),
                    reply,
                })
                .unwrap();
        }
    }

    #[test]
    fn a_worker_takes_its_share_when_another_is_idle() {
        let (queue, jobs) = job_queue();
        let counts = Counts::default();
        queue_jobs(&queue, &counts, 8);
        counts.idle_workers.store(1, Ordering::Release); // the other worker, waiting for the lock
        let batch = next_batch(&jobs, &options(32, Duration::ZERO), &counts).unwrap();
        assert_eq!(batch.len(), 4);
        assert_eq!(counts.queued_texts.load(Ordering::Acquire), 4);
    }

    #[test]
    fn a_lone_worker_takes_the_queue_up_to_max_batch() {
        let (queue, jobs) = job_queue();
        let counts = Counts::default();
        queue_jobs(&queue, &counts, 40);
        let batch = next_batch(&jobs, &options(32, Duration::ZERO), &counts).unwrap();
        assert_eq!(batch.len(), 32);
        let batch = next_batch(&jobs, &options(32, Duration::ZERO), &counts).unwrap();
        assert_eq!(batch.len(), 8);
    }

    #[test]
    fn with_max_wait_a_worker_waits_for_later_texts() {
        let (queue, jobs) = job_queue();
        let counts = Arc::new(Counts::default());
        queue_jobs(&queue, &counts, 1);
        let later = {
            let (queue, counts) = (queue.clone(), counts.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                queue_jobs(&queue, &counts, 2);
            })
        };
        let batch = next_batch(&jobs, &options(3, Duration::from_secs(30)), &counts).unwrap();
        later.join().unwrap();
        assert_eq!(batch.len(), 3, "stops at max_batch, long before max_wait");
        // Without a wait, a lone text goes at once.
        queue_jobs(&queue, &counts, 1);
        let batch = next_batch(&jobs, &options(3, Duration::ZERO), &counts).unwrap();
        assert_eq!(batch.len(), 1);
    }
}
