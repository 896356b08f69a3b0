//! The `akidb` binary as a user runs it: real bundles from `models/`, real processes, bad inputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use akidb_testkit::paths::int8_bundle;

fn akidb(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_akidb"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("akidb runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// `akidb bundle build` of model `onnx` and `tokenizer` as name "m", `version`, into `out`, with `extra` flags.
fn bundle_build(onnx: &Path, tokenizer: &Path, version: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "bundle",
        "build",
        "--onnx",
        path_str(onnx),
        "--tokenizer",
        path_str(tokenizer),
    ];
    args.extend(["--name", "m", "--version", version, "--out", path_str(out)]);
    args.extend(extra);
    akidb(&args, None)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with a message containing every one of `needles`, and writes nothing to stdout.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {}",
        stderr(out)
    );
    let err = stderr(out);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert!(out.stdout.is_empty(), "wrote to stdout despite failing");
}

fn copy_bundle(to: &Path) -> PathBuf {
    let dst = to.join("bundle");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["manifest.json", "model.onnx", "tokenizer.json"] {
        std::fs::copy(int8_bundle().join(f), dst.join(f)).unwrap();
    }
    dst
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn embed_writes_one_line_per_input_in_order() {
    let bundle = int8_bundle();
    let stdin = "{\"text\": \"first\"}\n\n{\"text\": \"\"}\n{\"text\": \"A much longer third sentence about embeddings.\"}\n";
    let out = akidb(&["embed", "--bundle", path_str(&bundle)], Some(stdin));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["embedding"].as_array().unwrap().len(), 384);
    }
    // Each line is the embedding of its own input: compare with embedding that text alone.
    let alone = akidb(
        &[
            "embed",
            "--bundle",
            path_str(&bundle),
            "A much longer third sentence about embeddings.",
        ],
        None,
    );
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    let (a, b) = (
        alone["embedding"].as_array().unwrap(),
        lines[2]["embedding"].as_array().unwrap(),
    );
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-5, "max diff {diff}");
}

#[test]
fn tokenize_writes_ids() {
    let out = akidb(
        &["tokenize", "--bundle", path_str(&int8_bundle())],
        Some("{\"text\": \"hello world\"}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"ids\":[101,7592,2088,102]}\n"
    );
}

#[test]
fn invalid_json_on_stdin_names_the_line_and_writes_nothing() {
    let out = akidb(
        &["embed", "--bundle", path_str(&int8_bundle())],
        Some("{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"txt\": oops}\n"),
    );
    assert_fails_with(&out, &["stdin line 3"]);
}

#[test]
fn a_flipped_byte_in_the_model_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(tmp.path());
    let model = bundle.join("model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&model, bytes).unwrap();
    assert_fails_with(
        &akidb(&["bundle", "verify", path_str(&bundle)], None),
        &["model.onnx", "corrupt", "sha256"],
    );
    assert_fails_with(
        &akidb(&["embed", "--bundle", path_str(&bundle), "x"], None),
        &["model.onnx", "corrupt"],
    );
}

#[test]
fn a_missing_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(tmp.path());
    std::fs::remove_file(bundle.join("tokenizer.json")).unwrap();
    assert_fails_with(
        &akidb(&["bundle", "verify", path_str(&bundle)], None),
        &["tokenizer.json", "missing"],
    );
}

#[test]
fn an_unknown_manifest_format_is_reported_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(tmp.path());
    let path = bundle.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["format_version"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    assert_fails_with(
        &akidb(&["bundle", "verify", path_str(&bundle)], None),
        &["format_version 99", "reads format_version 1"],
    );
}

#[test]
fn a_truncated_tokenizer_is_refused_at_build_and_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(tmp.path());
    let tok = std::fs::read(bundle.join("tokenizer.json")).unwrap();
    let truncated = tmp.path().join("tokenizer.json");
    std::fs::write(&truncated, &tok[..tok.len() / 2]).unwrap();
    let out_dir = tmp.path().join("out");
    let out = bundle_build(&bundle.join("model.onnx"), &truncated, "1", &out_dir, &[]);
    assert_fails_with(&out, &["tokenizer.json", "not a usable tokenizer.json"]);
    assert!(!out_dir.exists(), "nothing may be written");
    // In a bundle, the manifest's size catches it before parsing.
    std::fs::write(bundle.join("tokenizer.json"), &tok[..tok.len() / 2]).unwrap();
    assert_fails_with(
        &akidb(&["bundle", "verify", path_str(&bundle)], None),
        &["tokenizer.json", "truncated"],
    );
}

#[test]
fn a_file_that_is_not_onnx_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("model.onnx");
    std::fs::write(&fake, b"this is not a protobuf model at all").unwrap();
    let out_dir = tmp.path().join("out");
    let out = bundle_build(&fake, &int8_bundle().join("tokenizer.json"), "1", &out_dir, &[]);
    assert_fails_with(&out, &["model.onnx", "not a usable ONNX"]);
    assert!(!out_dir.exists(), "nothing may be written");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temporary directory left behind"
    );
}

#[test]
fn build_is_idempotent_and_refuses_to_overwrite_a_different_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let src = int8_bundle();
    let out_dir = tmp.path().join("b");
    let build = |version: &str| {
        bundle_build(
            &src.join("model.onnx"),
            &src.join("tokenizer.json"),
            version,
            &out_dir,
            &[],
        )
    };
    assert!(build("1").status.success());
    let manifest = std::fs::read(out_dir.join("manifest.json")).unwrap();
    let again = build("1");
    assert!(
        again.status.success() && stderr(&again).contains("already up to date"),
        "{}",
        stderr(&again)
    );
    assert_fails_with(&build("2"), &["already exists", "different bundle"]);
    assert_eq!(
        std::fs::read(out_dir.join("manifest.json")).unwrap(),
        manifest,
        "the existing bundle is untouched"
    );
    let verify = akidb(&["bundle", "verify", path_str(&out_dir)], None);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn an_int8_dynamic_build_calibrates_on_the_given_sentences_or_refuses_an_empty_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = int8_bundle();
    let build = |out: &str, extra: &[&str]| {
        let mut flags = vec!["--quantization", "int8-dynamic"];
        flags.extend(extra);
        let out_dir = tmp.path().join(out);
        let output = bundle_build(
            &src.join("model.onnx"),
            &src.join("tokenizer.json"),
            "1",
            &out_dir,
            &flags,
        );
        (output, out_dir)
    };
    let outliers = |dir: &Path| -> usize {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        m["outlier_channels"].as_object().map_or(0, |o| o.len())
    };
    // Default: `akidb bench`'s sentences.
    let (out, default_dir) = build("default", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(outliers(&default_dir) > 0, "calibrated by default");
    // A file of its own, one sentence per line (blank lines skipped).
    let file = tmp.path().join("calibration.txt");
    std::fs::write(
        &file,
        "Invoices are due within thirty days.\n\nThe patient was discharged on Monday.\n",
    )
    .unwrap();
    let (out, own_dir) = build("own", &["--calibration", path_str(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(outliers(&own_dir) > 0);
    assert_ne!(
        std::fs::read(own_dir.join("manifest.json")).unwrap(),
        std::fs::read(default_dir.join("manifest.json")).unwrap(),
        "other sentences, other channels"
    );
    // An empty file, or none, is refused by name and writes nothing.
    std::fs::write(&file, "\n  \n").unwrap();
    let (out, empty_dir) = build("empty", &["--calibration", path_str(&file)]);
    assert_fails_with(&out, &["calibration.txt", "no sentences"]);
    let (out, _) = build("missing", &["--calibration", "/nonexistent/calibration.txt"]);
    assert_fails_with(
        &out,
        &["cannot read calibration file /nonexistent/calibration.txt"],
    );
    assert!(!empty_dir.exists(), "a refused build left a bundle");
}

#[test]
fn a_max_seq_length_over_the_models_positions_is_refused_at_build() {
    let tmp = tempfile::tempdir().unwrap();
    let src = int8_bundle();
    let out = bundle_build(
        &src.join("model.onnx"),
        &src.join("tokenizer.json"),
        "1",
        &tmp.path().join("out"),
        &["--max-seq-length", "100000"],
    );
    assert_fails_with(&out, &["100000", "512"]);
    assert!(!tmp.path().join("out").exists(), "a refused build left a bundle");
}

#[test]
fn a_text_over_max_chars_is_refused_naming_the_line() {
    let bundle = int8_bundle();
    let long = "x".repeat(2001);
    let stdin = format!("{{\"text\": \"short\"}}\n{{\"text\": \"{long}\"}}\n");
    let out = akidb(
        &["embed", "--bundle", path_str(&bundle), "--max-chars", "2000"],
        Some(&stdin),
    );
    assert_fails_with(&out, &["stdin line 2", "2001 characters", "limit is 2000"]);
}
