//! `akidb`: build and verify model bundles, embed and tokenize text, benchmark the core.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use akidb_core::signing::TrustedKeys;
use akidb_core::MANIFEST_FILE;
use akidb_core::{Bundle, BundleSpec, Device, Embedder, EmbedderOptions, Pooling, Quantization};
use akidb_native::{bench, bundle_dir, jsonl, signing};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

/// Sentence embeddings from one pure-Rust core.
#[derive(Parser)]
#[command(name = "akidb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Trusted public keys ({"keys":[{"key_id","public_key"}, …]}): the bundle's manifest.json.sig must be
    /// a valid signature by one of them (any command that loads a bundle; see `akidb keygen`). Without
    /// it, signatures are not checked.
    #[arg(long, global = true, value_name = "FILE")]
    trusted_keys: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Build or verify a model bundle (manifest.json + model.onnx + tokenizer.json).
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Embed texts: the TEXT arguments, or JSON lines {"text": "…"} on stdin. Writes one
    /// {"embedding": [...]} line per input, in order.
    Embed {
        /// Bundle directory.
        #[arg(long)]
        bundle: PathBuf,
        /// Texts to embed; without any, stdin is read.
        text: Vec<String>,
        /// Longest text accepted, in characters (the model reads the first few hundred tokens only).
        #[arg(long, default_value_t = 100_000)]
        max_chars: usize,
        /// Where the model runs: cpu, cuda, cuda:N, or auto (the GPU if it loads, else the CPU).
        #[arg(long, default_value = "cpu")]
        device: Device,
    },
    /// Tokenize texts like `embed` does, writing one {"ids": [...]} line per input.
    Tokenize {
        /// Bundle directory.
        #[arg(long)]
        bundle: PathBuf,
        /// Texts to tokenize; without any, stdin is read.
        text: Vec<String>,
        /// Longest text accepted, in characters (the model reads the first few hundred tokens only).
        #[arg(long, default_value_t = 100_000)]
        max_chars: usize,
    },
    /// Measure load time, warm single-sentence latency, batch-of-32 throughput and peak memory.
    Bench {
        /// Bundle directory.
        #[arg(long)]
        bundle: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Single-sentence calls to time.
        #[arg(long, default_value_t = 200)]
        single_runs: usize,
        /// Batches of 32 to time.
        #[arg(long, default_value_t = 10)]
        batch_rounds: usize,
        /// Also time batches of this many texts (the 32 repeated), e.g. 256 on a GPU; 0: not measured.
        #[arg(long, default_value_t = 0)]
        big_batch: usize,
        /// Where the model runs: cpu, cuda, cuda:N, or auto (the GPU if it loads, else the CPU).
        #[arg(long, default_value = "cpu")]
        device: Device,
    },
    /// Serve embeddings over HTTP: POST /v1/embed {"texts": [...]}, OpenAI-compatible POST /v1/embeddings,
    /// /healthz, /readyz, /metrics, /openapi.json.
    Serve(ServeArgs),
    /// Make an ed25519 key pair for signing bundles: OUT/NAME.key (private, created 0600, never printed)
    /// and OUT/NAME.pub (public; list it in a --trusted-keys file). Prints the key id.
    Keygen {
        /// Directory to write the two files to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// File name of the pair, without extension.
        #[arg(long, default_value = "akidb-signing")]
        name: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Bundle directory.
    #[arg(long, conflicts_with = "bundle_url", required_unless_present = "bundle_url")]
    bundle: Option<PathBuf>,
    /// Manifest URL on a model-server (…/v1/models/NAME/VERSION/manifest.json) or a static host.
    #[arg(long)]
    bundle_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Where the model runs: cpu, cuda, cuda:N, or auto (the GPU if it loads, else the CPU; /readyz and
    /// the akidb_device_info metric say which). `cuda` without a usable GPU stops at start, naming what
    /// is missing.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Most texts per model call (default: 32 on the CPU, 256 on a GPU).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest wait, in milliseconds, for more texts to fill a batch (default: 0 on the CPU — batches
    /// still form from what queues while the workers are busy —, 2 on a GPU).
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// Most tokens per model call; a batch over it runs as several calls (default: no limit on the CPU,
    /// 32768 on a GPU).
    #[arg(long)]
    max_batch_tokens: Option<usize>,
    /// Most texts waiting in the queue; beyond it requests get 429 (default: 2048 on the CPU, 4096 on a GPU).
    #[arg(long)]
    queue: Option<usize>,
    /// Worker threads running the model (default: one per core on the CPU, 2 on a GPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Most texts per request.
    #[arg(long, default_value_t = 256)]
    max_texts: usize,
    /// Most characters per text.
    #[arg(long, default_value_t = 20_000)]
    max_chars: usize,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 2 << 20)]
    max_body_bytes: usize,
    /// Request timeout, seconds: a request not answered by then gets 503, and its texts not yet
    /// computed are dropped.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// Seconds a connection may take to send a complete request head (idle keep-alive included);
    /// then it is closed.
    #[arg(long, default_value_t = 10)]
    header_timeout_s: u64,
    /// Seconds the body may pause between two chunks; then the request fails with 408.
    #[arg(long, default_value_t = 30)]
    body_timeout_s: u64,
    /// Most connections open at once; further clients wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// With --bundle-url: seconds without a byte from the server before a download try fails (4 tries).
    #[arg(long, default_value_t = 30)]
    fetch_timeout_s: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    json_logs: bool,
}

fn serve(args: ServeArgs, trusted_keys: TrustedKeys) -> Result<()> {
    use akidb_native::serve::{BundleSource, ServeConfig};
    akidb_http::init_tracing(args.json_logs);
    let mut config = ServeConfig {
        trusted_keys,
        ..Default::default()
    };
    config.connections.header_read_timeout = Duration::from_secs(args.header_timeout_s.max(1));
    config.connections.body_read_timeout = Duration::from_secs(args.body_timeout_s.max(1));
    config.connections.max_connections = args.max_connections.max(1);
    config.fetch.read_timeout = Duration::from_secs(args.fetch_timeout_s.max(1));
    config.fetch.connect_timeout = config.fetch.read_timeout.min(config.fetch.connect_timeout);
    config.limits.max_texts = args.max_texts;
    config.limits.max_chars = args.max_chars;
    config.limits.max_body_bytes = args.max_body_bytes;
    config.limits.request_timeout = Duration::from_secs(args.timeout_s);
    config.device = args.device;
    // A flag given applies whichever device the model lands on (with auto, either).
    for batching in [&mut config.batching, &mut config.gpu_batching] {
        if let Some(n) = args.max_batch {
            batching.max_batch = n.max(1);
        }
        if let Some(ms) = args.max_wait_ms {
            batching.max_wait = Duration::from_millis(ms);
        }
        if let Some(n) = args.max_batch_tokens {
            batching.max_tokens = n.max(1);
        }
        if let Some(n) = args.queue {
            batching.queue_capacity = n;
        }
        if let Some(w) = args.workers {
            batching.workers = w.max(1);
        }
    }
    // Before any other thread starts: selecting cuda:N restricts the process to that GPU. A GPU that is
    // not usable stops the service here, with what is missing, before the port opens.
    akidb_core::device::check(args.device)?;
    let source = match (args.bundle, args.bundle_url) {
        (Some(dir), _) => BundleSource::Dir(dir),
        (None, Some(url)) => BundleSource::Url(url),
        (None, None) => anyhow::bail!("give --bundle DIR or --bundle-url URL"),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(akidb_native::serve::run(config, source, args.addr))
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Build a bundle directory from an ONNX model and a tokenizer.json, atomically.
    ///
    /// The embedding dimension, input/output names and quantisation are read off the model. The
    /// tokenizer's own truncation and padding settings are ignored: the bundle's --max-seq-length wins.
    Build {
        /// ONNX model file.
        #[arg(long)]
        onnx: PathBuf,
        /// Hugging Face tokenizer.json.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Model name, e.g. all-MiniLM-L6-v2.
        #[arg(long)]
        name: String,
        /// Bundle version, e.g. 1.0.0-int8.
        #[arg(long)]
        version: String,
        /// Pooling of token vectors.
        #[arg(long, value_enum, default_value_t = PoolingArg::Mean)]
        pooling: PoolingArg,
        /// Truncation length in tokens, special tokens included (sentence-transformers' max_seq_length).
        #[arg(long, default_value_t = 256)]
        max_seq_length: usize,
        /// Do not L2-normalise embeddings.
        #[arg(long)]
        no_normalize: bool,
        /// `int8-dynamic`: run the weight products of an int8 model as int8 × int8 → i32, activations
        /// quantised per row at run time (faster on CPUs with int8 dot products, slightly less exact).
        /// Default: what the model holds (`none` or `int8-weights`).
        #[arg(long, value_enum)]
        quantization: Option<QuantizationArg>,
        /// `int8-dynamic` only: a text file, one sentence per line, to find the outlier input channels
        /// of each weight product from (kept out of the int8 products; the integer path is more exact
        /// with them). Default: the 33 sentences of `akidb bench`.
        #[arg(long, value_name = "FILE")]
        calibration: Option<PathBuf>,
        /// Output directory; must not exist, or hold this very bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify every file of a bundle against its manifest and check that the model loads.
    Verify {
        /// Bundle directory.
        dir: PathBuf,
    },
    /// Sign a bundle: writes DIR/manifest.json.sig, an ed25519 signature over the exact bytes of
    /// manifest.json (which pins every other file by sha256). The bundle's files are verified first.
    Sign {
        /// Private key file from `akidb keygen` (must not be readable by group or others).
        #[arg(long)]
        key: PathBuf,
        /// Bundle directory.
        dir: PathBuf,
    },
}

impl Command {
    /// The bundle directory a command loads, whose signature `--trusted-keys` checks first.
    fn bundle_dir(&self) -> Option<&Path> {
        match self {
            Command::Embed { bundle, .. }
            | Command::Tokenize { bundle, .. }
            | Command::Bench { bundle, .. } => Some(bundle),
            Command::Bundle(BundleCommand::Verify { dir }) => Some(dir),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}

/// The quantisations a bundle can ask for beyond what its model holds.
#[derive(Clone, Copy, ValueEnum)]
enum QuantizationArg {
    /// int8 × int8 → i32 weight products, activations quantised per row at run time.
    Int8Dynamic,
}

/// The calibration texts of `bundle build`: the non-blank lines of `file`, or `akidb bench`'s sentences.
fn calibration_texts(file: Option<&Path>) -> Result<Vec<String>> {
    let Some(file) = file else {
        let bench: bench::BenchSentences = serde_json::from_str(bench::SENTENCES_JSON)?;
        return Ok(std::iter::once(bench.single).chain(bench.batch).collect());
    };
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read calibration file {} (UTF-8 text, one sentence per line)",
            file.display()
        )
    })?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        bail!("calibration file {} has no sentences", file.display());
    }
    Ok(lines)
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn load_embedder(dir: &Path) -> Result<Embedder> {
    load_embedder_on(dir, Device::Cpu)
}

fn load_embedder_on(dir: &Path, device: Device) -> Result<Embedder> {
    akidb_core::device::check(device)?;
    let bar = spinner(&format!("loading {}", dir.display()));
    let bundle = bundle_dir::load(dir)?;
    let options = EmbedderOptions {
        device,
        ..EmbedderOptions::default()
    };
    let embedder = Embedder::with_options(&bundle, options)
        .with_context(|| format!("cannot load the model of {}", dir.display()))?;
    bar.finish_and_clear();
    if let Some(why) = embedder.device_fallback() {
        eprintln!("--device auto: running on the CPU ({why})");
    }
    Ok(embedder)
}

fn texts_or_stdin(text: Vec<String>, max_chars: usize) -> Result<Vec<String>> {
    if !text.is_empty() {
        for (i, t) in text.iter().enumerate() {
            jsonl::check_length(t, max_chars).with_context(|| format!("text argument {}", i + 1))?;
        }
        return Ok(text);
    }
    if std::io::stdin().is_terminal() {
        eprintln!("reading JSON lines {{\"text\": \"…\"}} from stdin; end with Ctrl-D");
    }
    jsonl::read_texts(std::io::stdin().lock(), max_chars)
}

/// Inputs per model call when streaming; bounds memory on large inputs.
const EMBED_CHUNK: usize = 256;

fn embed(bundle: &Path, text: Vec<String>, max_chars: usize, device: Device) -> Result<()> {
    let texts = texts_or_stdin(text, max_chars)?;
    let embedder = load_embedder_on(bundle, device)?;
    let bar = if texts.len() > EMBED_CHUNK {
        ProgressBar::new(texts.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for chunk in texts.chunks(EMBED_CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs)?;
        for row in vectors.rows() {
            serde_json::to_writer(&mut out, &serde_json::json!({ "embedding": row }))?;
            out.write_all(b"\n")?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(())
}

fn tokenize(bundle: &Path, text: Vec<String>, max_chars: usize) -> Result<()> {
    let texts = texts_or_stdin(text, max_chars)?;
    let embedder = load_embedder(bundle)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for tokens in embedder.tokenize(&refs)? {
        serde_json::to_writer(&mut out, &serde_json::json!({ "ids": tokens.ids }))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let trusted = signing::trusted_keys(cli.trusted_keys.as_deref())?;
    // The directory's manifest is read again by the load that follows; `akidb serve` checks the very
    // bytes it loads (bundle_dir::load_with).
    let key_id = match cli.command.bundle_dir() {
        Some(dir) => signing::verify_dir(dir, &trusted)?,
        None => None,
    };
    match cli.command {
        Command::Keygen { out, name } => {
            let files = signing::keygen(&out, &name)?;
            eprintln!(
                "wrote {} (private, mode 0600) and {}",
                files.private_key.display(),
                files.public_key.display()
            );
            println!("{}", files.key_id);
            Ok(())
        }
        Command::Bundle(BundleCommand::Sign { key, dir }) => {
            let key_id = signing::sign_dir(&key, &dir)?;
            eprintln!("signed {} with key {key_id}", dir.join(MANIFEST_FILE).display());
            Ok(())
        }
        Command::Bundle(BundleCommand::Build {
            onnx,
            tokenizer,
            name,
            version,
            pooling,
            max_seq_length,
            no_normalize,
            quantization,
            calibration,
            out,
        }) => {
            let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            let (model, tok) = (read(&onnx)?, read(&tokenizer)?);
            let calibration = calibration_texts(calibration.as_deref())?;
            let bar = spinner(if quantization.is_some() {
                "checking model and tokenizer, calibrating the integer path"
            } else {
                "checking model and tokenizer"
            });
            let pooling = match pooling {
                PoolingArg::Mean => Pooling::Mean,
                PoolingArg::Cls => Pooling::Cls,
            };
            let spec = BundleSpec {
                name,
                version,
                pooling,
                max_seq_length,
                normalize: !no_normalize,
                quantization: quantization.map(|q| match q {
                    QuantizationArg::Int8Dynamic => Quantization::Int8Dynamic,
                }),
                calibration,
            };
            let bundle = Bundle::create(spec, model, tok)?;
            bar.finish_and_clear();
            match bundle_dir::write(&bundle, &out)? {
                bundle_dir::Written::Created => eprintln!("wrote bundle {}", out.display()),
                bundle_dir::Written::Unchanged => eprintln!("bundle {} is already up to date", out.display()),
            }
            Ok(())
        }
        Command::Bundle(BundleCommand::Verify { dir }) => {
            let embedder = load_embedder(&dir)?;
            let m = embedder.manifest();
            println!(
                "ok: {}@{} ({} files, {} bytes, dim {})",
                m.name,
                m.version,
                m.files.len(),
                m.total_size(),
                m.dim
            );
            match key_id {
                Some(key_id) => println!("signature: ok, key {key_id}"),
                None => println!("signature: not checked (no --trusted-keys)"),
            }
            Ok(())
        }
        Command::Serve(args) => serve(args, trusted),
        Command::Embed {
            bundle,
            text,
            max_chars,
            device,
        } => embed(&bundle, text, max_chars, device),
        Command::Tokenize {
            bundle,
            text,
            max_chars,
        } => tokenize(&bundle, text, max_chars),
        Command::Bench {
            bundle,
            json,
            single_runs,
            batch_rounds,
            big_batch,
            device,
        } => {
            akidb_core::device::check(device)?;
            let bar = spinner("benchmarking");
            let report = bench::run_on(&bundle, single_runs, batch_rounds, big_batch, device)?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("model            {}", report.model);
                println!("device           {} ({})", report.device, report.device_name);
                println!("load             {:.2} s", report.load_s);
                println!("first embedding  {:.1} ms", report.first_ms);
                println!(
                    "single ({} tok)   p50 {:.2} ms  p95 {:.2} ms",
                    report.single_tokens, report.single_p50_ms, report.single_p95_ms
                );
                println!(
                    "batch of 32      {:.1} ms  ({:.1} sentences/s, {} tokens)",
                    report.batch32_ms, report.sentences_per_s, report.batch_tokens
                );
                if let (Some(n), Some(ms), Some(rate)) = (
                    report.big_batch,
                    report.big_batch_ms,
                    report.big_batch_sentences_per_s,
                ) {
                    println!("batch of {n:<8} {ms:.1} ms  ({rate:.1} sentences/s)");
                }
                println!("peak RSS         {:.0} MB", report.peak_rss_mb);
                println!("matmul kernels   {}", report.matmul_kernels.join(", "));
                if report.integer_matmuls {
                    println!("weight products  int8 x int8 -> i32 (int8-dynamic)");
                }
                if !report.host_ops.is_empty() {
                    println!("ops on the CPU   {}", report.host_ops.join(", "));
                }
            }
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
