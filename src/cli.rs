//! The command-line runner's code: runs a recipe JSON natively (Vulkan GPU, or the CPU reference)
//! and prints a results table; `--json` also writes the full report. Same experiment code as the
//! page. The binary (src/bin/squeeze.rs) only calls `main`.

use clap::{Parser, Subcommand, ValueEnum};
use crate::data::files::{default_data_dir, load_named};
use crate::experiment::{run, Backend, Control, Event, ModelFiles, RunOptions};
use crate::gpu::GpuContext;
use crate::recipe::Recipe;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "squeeze", about = "Train and compress small image classifiers from a recipe", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a recipe and print a results table.
    Run {
        /// The recipe file (JSON); see recipes/.
        recipe: PathBuf,
        /// Where the math runs ("auto": the faster for this recipe's model, measured).
        #[arg(long, value_enum, default_value_t = BackendArg::Gpu)]
        backend: BackendArg,
        /// How convolutions run on the GPU: "im2col" or "direct" (default: the faster on this adapter).
        #[arg(long)]
        conv: Option<String>,
        /// Data directory holding mnist/ and fashion-mnist/ (default: $SQUEEZE_DATA or www/public/data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Also write the full report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the final model to this file (the .sqz format of src/export.rs: pruned weight
        /// matrices in the 5-bit relative-index encoding) and print its size.
        #[arg(long)]
        save_model: Option<PathBuf>,
        /// Write the final model as ONNX (opset 13) to this file: float, or QDQ where quantized.
        #[arg(long)]
        export_onnx: Option<PathBuf>,
        /// Which model --save-model and --export-onnx write: the one stage N left (0: after the
        /// first training; 1 the recipe's first stage, ...). Default: the final model.
        #[arg(long)]
        stage: Option<usize>,
        /// Print a progress line every N training steps.
        #[arg(long, default_value_t = 200)]
        progress_every: usize,
        /// Override the recipe's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Threads for the CPU backend's large products and passes, this one included (default:
        /// $SQUEEZE_THREADS, else one per core). Any count gives the same numbers.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
        threads: Option<u64>,
        /// A .sqz model file a distill stage names as its teacher (`"teacher": {"file": NAME}`
        /// matches the file's name); repeatable. Unnamed ones are looked for beside the recipe.
        #[arg(long)]
        teacher: Vec<PathBuf>,
        /// The model file the recipe starts from (`"from": {"file": NAME}` matches the file's
        /// name; else it is looked for beside the recipe).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Validate a recipe without running it: its fields, and that every training it runs fits the
    /// backend on the dataset (teacher files are looked for beside it).
    Check {
        recipe: PathBuf,
        /// As `run --teacher`.
        #[arg(long)]
        teacher: Vec<PathBuf>,
        /// As `run --model`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// The backend whose limits the recipe must fit (as `run --backend`).
        #[arg(long, value_enum, default_value_t = BackendArg::Gpu)]
        backend: BackendArg,
    },
    /// Convert a .sqz model file to ONNX (opset 13; QDQ where the model is quantized).
    ExportOnnx {
        /// A .sqz (or ONNX) model file.
        model: PathBuf,
        out: PathBuf,
    },
    /// Write a model's logits on the test split of a dataset (f32 little-endian, [n, classes], the
    /// CPU reference): what an ONNX runtime's answers are checked against.
    Logits {
        /// A .sqz or ONNX model file.
        model: PathBuf,
        /// "mnist", "fashion-mnist".
        #[arg(long, default_value = "mnist")]
        dataset: String,
        #[arg(long)]
        data: Option<PathBuf>,
        /// The first N test images (default: all).
        #[arg(long)]
        images: Option<usize>,
        /// The model's integer (int8) form instead of its fake-quantized float one.
        #[arg(long)]
        integer: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the GPU adapter wgpu picks.
    Adapter,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Gpu,
    Cpu,
    /// The faster of the two for this recipe's model, timed on a few training steps each.
    Auto,
}

/// The backend `arg` names; for `auto`, the faster for `recipe` on `rows`×`cols` images (the
/// CPU where there is no GPU), with both figures printed.
async fn pick_backend(arg: BackendArg, conv: Option<String>, recipe: &crate::recipe::Recipe, (rows, cols): (usize, usize)) -> crate::Result<Backend> {
    let gpu = || async {
        let mut ctx = GpuContext::new().await?;
        if let Some(name) = &conv {
            ctx.conv = crate::gpu::net::ConvMethod::parse(name).ok_or_else(|| crate::Error::recipe("--conv", format!("\"im2col\" or \"direct\", got {name:?}")))?;
        }
        Ok::<Backend, crate::Error>(Backend::Gpu(ctx))
    };
    Ok(match arg {
        BackendArg::Gpu => gpu().await?,
        BackendArg::Cpu => Backend::Cpu,
        BackendArg::Auto => {
            let gpu = gpu().await;
            if let Err(e) = &gpu {
                eprintln!("no GPU backend: {e}");
            }
            recipe.validate()?;
            let choice = crate::experiment::calibrate::choose(recipe, (rows, cols), gpu.as_ref().ok(), 0.5).await?;
            eprintln!("backend by measurement: {}", choice.summary.replace("WebGPU", "GPU"));
            match (choice.chosen, gpu) {
                ("gpu", Ok(b)) => b,
                _ => Backend::Cpu,
            }
        }
    })
}

pub fn main() -> ExitCode {
    keep_freed_memory();
    match pollster::block_on(main_async(Cli::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_recipe(path: &PathBuf) -> crate::Result<Recipe> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Io { path: path.display().to_string(), message: e.to_string() })?;
    Recipe::from_json(&text)
}

/// The model files `r` names (the one it starts from, its teachers): each from `given` (by file
/// name), else beside the recipe; read and checked before any work.
fn model_files(recipe: &std::path::Path, r: &Recipe, given: &[PathBuf]) -> crate::Result<ModelFiles> {
    let mut files = ModelFiles::new();
    for name in r.model_files() {
        let wanted = std::path::Path::new(name).file_name();
        let path = match given.iter().find(|p| p.file_name() == wanted) {
            Some(p) => p.clone(),
            None => recipe.parent().unwrap_or(std::path::Path::new(".")).join(name),
        };
        let bytes = std::fs::read(&path).map_err(|e| crate::Error::Io { path: path.display().to_string(), message: format!("{e} (the model file {name:?}: pass it with --teacher PATH, or --model PATH for the one it starts from)") })?;
        let loaded = crate::export::load_any(&bytes).map_err(|e| crate::Error::Io { path: path.display().to_string(), message: e.to_string() })?;
        files.insert(name.to_string(), loaded);
    }
    Ok(files)
}

/// `--stage N` names a stage of the recipe that leaves a model (scans leave none), before any work.
fn check_stage(r: &crate::recipe::Recipe, n: usize) -> crate::Result<()> {
    let bad = |m: String| Err(crate::Error::Invalid(format!("--stage {n}: {m}")));
    match n.checked_sub(1).map(|i| r.stages.get(i)) {
        None => Ok(()),
        Some(None) => bad(format!("the recipe has {} stages after training (0 is the trained model)", r.stages.len())),
        Some(Some(s)) if s.is_scan() => bad("that stage is a scan: it measures models and leaves the one it was given".into()),
        Some(Some(_)) => Ok(()),
    }
}

fn read_model(path: &PathBuf) -> crate::Result<(crate::inspect::StageModel, crate::data::Normalization)> {
    let io = |e: String| crate::Error::Io { path: path.display().to_string(), message: e };
    crate::export::load_any(&std::fs::read(path).map_err(|e| io(e.to_string()))?).map_err(|e| io(e.to_string()))
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> crate::Result<()> {
    std::fs::write(path, bytes).map_err(|e| crate::Error::Io { path: path.display().to_string(), message: e.to_string() })
}

/// Writes `m` as ONNX to `path` and says what was written.
fn write_onnx(m: &crate::inspect::StageModel, norm: crate::data::Normalization, path: &PathBuf) -> crate::Result<()> {
    let out = crate::onnx::export(m, norm)?;
    write_file(path, &out.bytes)?;
    println!("ONNX file (opset {}): {} bytes ({})", crate::onnx::OPSET, out.bytes.len(), path.display());
    out.notes.iter().for_each(|n| println!("  {n}"));
    Ok(())
}

async fn main_async(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::ExportOnnx { model, out } => {
            let (m, norm) = read_model(&model)?;
            write_onnx(&m, norm, &out)?;
        }
        Command::Logits { model, dataset, data, images, integer, out } => {
            let (m, norm) = read_model(&model)?;
            let splits = load_named(&data.unwrap_or_else(default_data_dir), &dataset)?;
            let logits = crate::inspect::logits(&m, norm, &splits.test, images.unwrap_or(usize::MAX), integer)?;
            write_file(&out, &logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
            println!("{} logits of {} images ({})", if integer { "integer-model" } else { "float" }, logits.len() / m.net.classes, out.display());
        }
        Command::Check { recipe, teacher, model, backend } => {
            let r = load_recipe(&recipe)?;
            let files = model_files(&recipe, &r, &[teacher, model.into_iter().collect()].concat())?;
            // The shipped datasets' shape; the user's own files are checked by `run` once read.
            let known = crate::experiment::DataShape::known(r.dataset);
            let backend = pick_backend(backend, None, &r, known.map_or((28, 28), |s| (s.rows, s.cols))).await?;
            if let Some(shape) = known {
                crate::experiment::check(&r, shape, &files, &backend)?;
            }
            println!("{}: valid for {}\n{}", recipe.display(), backend.describe(), r.to_json());
        }
        Command::Adapter => {
            let ctx = GpuContext::new().await?;
            println!("{}", serde_json::to_string_pretty(&ctx.adapter).expect("serializable"));
        }
        Command::Run { recipe, backend, conv, data, json, save_model, export_onnx, stage, progress_every, seed, threads, teacher, model } => {
            if let Some(n) = threads {
                crate::reference::pool::set_threads(n as usize);
            }
            let mut r = load_recipe(&recipe)?;
            if let Some(s) = seed {
                r.seed = s;
            }
            if let Some(n) = stage {
                check_stage(&r, n)?;
            }
            let files = model_files(&recipe, &r, &[teacher, model.into_iter().collect()].concat())?;
            let entry = gallery_entry(&recipe);
            let dir = data.unwrap_or_else(default_data_dir);
            let splits = load_named(&dir, r.dataset.as_str())?;
            let backend = pick_backend(backend, conv, &r, (splits.train.rows, splits.train.cols)).await?;
            eprintln!("recipe {} | {} | {}", recipe.display(), r.dataset.as_str(), backend.describe());
            let opts = RunOptions { progress_every, files };
            let mut on_event = |e: &Event| {
                match e {
                    Event::Progress { stage, epoch, epochs, step, steps, train_loss, train_accuracy, elapsed_s } => eprintln!(
                        "  stage {stage} epoch {}/{epochs} step {step}/{steps}: loss {train_loss:.4} acc {:.2}% ({elapsed_s:.1}s)",
                        epoch + 1,
                        train_accuracy * 100.0
                    ),
                    Event::Epoch { stage, report } => eprintln!(
                        "stage {stage} epoch {}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1}s, {:.0} samples/s",
                        report.epoch,
                        report.train_loss,
                        report.train_accuracy * 100.0,
                        report.test_loss,
                        report.test_accuracy * 100.0,
                        report.train_s,
                        report.samples_per_s
                    ),
                    Event::Stage { stage, report } => eprintln!("stage {stage} ({}) done: test acc {:.2}%", report.name, report.test_accuracy * 100.0),
                    Event::Paused => {}
                }
                Control::Continue
            };
            let out = run(&r, &splits, &backend, &opts, &mut on_event).await?;
            let rep = &out.report;
            println!("\n{} | train {} / test {} samples | seed {} | {}", rep.dataset, rep.train_samples, rep.test_samples, rep.seed, rep.backend);
            println!(
                "model at the end {} {:?}: {} parameters, {} FLOPs/sample, {} bytes (f32)",
                rep.model.arch,
                rep.model.layers, rep.model.parameters, rep.model.flops_per_sample, rep.model.bytes_f32
            );
            println!("{:<12} {:>7} {:>10} {:>10} {:>10} {:>12} {:>12}", "stage", "epochs", "test acc", "test loss", "train s", "samples/s", "µs/image");
            for s in &rep.stages {
                println!(
                    "{:<12} {:>7} {:>9.2}% {:>10.4} {:>10.1} {:>12.0} {:>12.2}",
                    s.name,
                    s.epochs.len(),
                    s.test_accuracy * 100.0,
                    s.test_loss,
                    s.train_s,
                    s.samples_per_s,
                    s.inference_us_per_image
                );
            }
            for s in rep.stages.iter().filter_map(|s| s.pruning()) {
                let layers: Vec<String> = s.per_layer_sparsity.iter().map(|v| format!("{:.1}%", v * 100.0)).collect();
                println!(
                    "pruned: {:.2}% of weights zero ({} left, {} FLOPs/image on nonzero weights), per layer [{}]; hidden units {:?}, {} parameters",
                    s.weight_sparsity * 100.0,
                    s.weights_left,
                    s.flops_per_sample_remaining,
                    layers.join(", "),
                    s.hidden,
                    s.parameters
                );
                println!(
                    "stored: {} bytes dense f32, {} bytes bitmask ({:.1}x smaller), {} bytes 5-bit relative index ({:.1}x smaller)",
                    s.bytes_dense,
                    s.bytes_bitmask,
                    s.bytes_dense as f64 / s.bytes_bitmask as f64,
                    s.bytes_relative,
                    s.bytes_dense as f64 / s.bytes_relative as f64
                );
                for r in &s.rounds {
                    println!(
                        "  round {}: test acc {:.2}% after pruning, {:.2}% after fine-tuning",
                        r.round,
                        r.accuracy_before_finetune * 100.0,
                        r.accuracy_after_finetune * 100.0
                    );
                }
            }
            for curves in rep.stages.iter().filter_map(|s| s.sensitivity()) {
                println!("sensitivity (test accuracy with one layer pruned, no fine-tuning):");
                for (l, points) in curves.iter().enumerate() {
                    let cells: Vec<String> = points.iter().map(|(s, a)| format!("{:.0}%: {:.2}%", s * 100.0, a * 100.0)).collect();
                    println!("  layer {l}: {}", cells.join("  "));
                }
            }
            for (s, d) in rep.stages.iter().filter_map(|s| Some((s, s.distillation()?))) {
                println!(
                    "distilled (T {}, alpha {}{}{}): student {:.2}% ({} parameters){}; teacher {:.2}% ({} parameters); top-1 agreement {:.2}%, mean KL(teacher || student) {:.4}",
                    d.temperature,
                    d.alpha,
                    if d.mse > 0.0 { format!(", logit MSE {}", d.mse) } else { String::new() },
                    d.attention.iter().map(|a| format!(", attention student node {} ~ teacher node {} (beta {})", a.student, a.teacher, a.beta)).collect::<String>()
                        + &d.hints.iter().map(|h| format!(", hint student node {} -> teacher node {} (weight {})", h.student, h.teacher, h.weight)).collect::<String>(),
                    s.test_accuracy * 100.0,
                    d.student_parameters,
                    d.baseline_accuracy.map(|b| format!(", the same student from labels alone {:.2}%", b * 100.0)).unwrap_or_default(),
                    d.teacher_accuracy * 100.0,
                    d.teacher_parameters,
                    d.agreement * 100.0,
                    d.mean_kl
                );
                if let Some(o) = &d.omitted {
                    println!(
                        "  classes {:?} omitted from the transfer set ({} training images left): {:.2}% of their {} test images right, {:.2}% after adding {} to their bias (whole test set {:.2}% -> {:.2}%)",
                        o.classes,
                        o.transfer_samples,
                        o.omitted_accuracy_before * 100.0,
                        o.test_samples_omitted,
                        o.omitted_accuracy * 100.0,
                        o.bias_shift,
                        o.test_accuracy_before * 100.0,
                        s.test_accuracy * 100.0
                    );
                }
            }
            for g in rep.stages.iter().filter_map(|s| s.distill_grid()) {
                println!("distillation grid: student test accuracy per alpha (rows) and T (columns); teacher {:.2}%", g.teacher_accuracy * 100.0);
                println!("  alpha \\ T {}", g.temperatures.iter().map(|t| format!("{t:>8}")).collect::<String>());
                for (a, row) in g.alphas.iter().zip(&g.accuracy) {
                    println!("  {a:>9} {}", row.iter().map(|c| c.map_or(format!("{:>8}", "diverged"), |v| format!("{:>7.2}%", v * 100.0))).collect::<String>());
                }
                if let Some((t, a, acc)) = g.best {
                    println!("  best: T {t}, alpha {a}: {:.2}%", acc * 100.0);
                }
            }
            for q in rep.stages.iter().filter_map(|s| s.quantization()) {
                println!(
                    "quantized ({:?}{}): float {:.2}% -> quantized {:.2}%; {} bytes f32 -> {} pruned -> {} quantized -> {} Huffman-coded ({:.1}x smaller){}",
                    q.mode,
                    if q.learned_steps { ", learned step sizes" } else { "" },
                    q.float_accuracy * 100.0,
                    q.quantized_accuracy * 100.0,
                    q.bytes_f32,
                    q.bytes_pruned,
                    q.bytes_quantized,
                    q.bytes_huffman,
                    q.bytes_f32 as f64 / q.bytes_huffman.max(1) as f64,
                    q.calibration.as_ref().map(|c| format!("; activations: {c}")).unwrap_or_default()
                );
                println!("  layer  scheme        bits  levels  weight SQNR  weight PSNR  max |err|   input SQNR  bytes f32 -> pruned -> quantized -> Huffman");
                for (l, x) in q.layers.iter().enumerate() {
                    let input = x.input.map(|e| format!("{:8.1} dB", e.sqnr_db)).unwrap_or_else(|| "       -   ".into());
                    println!(
                        "  {l:>5}  {:<12}  {:>4}  {:>6}  {:8.1} dB  {:8.1} dB  {:9.2e}  {input}  {:>9} -> {} -> {} -> {}",
                        format!("{:?}", x.scheme).to_lowercase(),
                        x.bits,
                        x.levels,
                        x.weights.sqnr_db,
                        x.weights.psnr_db,
                        x.weights.max_abs,
                        x.bytes_f32,
                        x.bytes_pruned,
                        x.bytes,
                        x.bytes_huffman
                    );
                }
                match (&q.integer, &q.integer_note) {
                    (Some(i), _) => println!(
                        "  integer inference ({}): test acc {:.2}% (top-1 as the fake-quantized model on {:.2}%); batch {}: f32 {:.2} µs/image, int8 {:.2} µs/image ({:.2}x){}",
                        i.kernel,
                        i.accuracy * 100.0,
                        i.agreement * 100.0,
                        i.batch,
                        i.f32_us,
                        i.int8_us,
                        i.f32_us / i.int8_us.max(1e-9),
                        if i.kernels.len() > 1 { format!("; products: {}", i.kernels.iter().map(|(k, us)| format!("{k} {us:.2} µs")).collect::<Vec<_>>().join(", ")) } else { String::new() }
                    ),
                    (None, Some(why)) => println!("  integer inference: none ({why})"),
                    _ => {}
                }
            }
            for w in rep.stages.iter().filter_map(|s| s.sweep()) {
                println!("bit-width sweep (weights quantized after training, activations float; float {:.2}%):", w.float_accuracy * 100.0);
                for p in &w.points {
                    println!("  {:<12} {:>2} bits: {:.2}%  {} bytes", format!("{:?}", p.scheme).to_lowercase(), p.layer_bits[0], p.accuracy * 100.0, p.bytes);
                }
                for (l, scan) in w.layers.iter().enumerate() {
                    let cells: Vec<String> = scan.iter().map(|(b, a)| format!("{b} bits: {:.2}%", a * 100.0)).collect();
                    println!("  layer {l} alone: {}", cells.join("  "));
                }
                if let Some(p) = &w.proposal {
                    println!("  mixed precision within {:.2} pp: bits {:?}, {:.2}%, {} bytes", w.budget * 100.0, p.layer_bits, p.accuracy * 100.0, p.bytes);
                }
            }
            for c in rep.stages.iter().filter_map(|s| s.pruning()?.control_accuracy) {
                println!("control: the same masks from fresh random weights reach {:.2}%", c * 100.0);
            }
            for (i, s) in rep.stages.iter().enumerate() {
                for w in &s.warnings {
                    println!("warning (stage {i}, {}): {w}", s.name);
                }
            }
            if let Some(entry) = &entry {
                print_gallery_figures(entry, rep, &out.models, out.norm);
            }
            println!("wall time {:.1}s", rep.wall_s);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(rep).expect("serializable"))
                    .map_err(|e| crate::Error::Io { path: path.display().to_string(), message: e.to_string() })?;
            }
            let model = match stage {
                Some(n) => out.models.iter().find(|m| m.stage == n).expect("check_stage: stage n leaves a model"),
                None => out.models.last().expect("the trained model at least"),
            };
            if let Some(path) = save_model {
                let bytes = crate::export::save(model, out.norm);
                write_file(&path, &bytes)?;
                println!("model file: {} bytes ({}, {})", bytes.len(), model.name, path.display());
            }
            if let Some(path) = export_onnx {
                write_onnx(model, out.norm, &path)?;
            }
        }
    }
    Ok(())
}

/// The gallery entry of a recipe (recipes/gallery.json beside it names its file), read before
/// the run. A gallery file that does not parse is said and the run goes on without it.
fn gallery_entry(recipe: &std::path::Path) -> Option<crate::gallery::Entry> {
    let text = std::fs::read_to_string(recipe.parent()?.join("gallery.json")).ok()?;
    match crate::gallery::Gallery::from_json(&text) {
        Ok(g) => recipe.file_name().and_then(|f| g.for_recipe(&f.to_string_lossy()).cloned()),
        Err(e) => {
            eprintln!("warning: the gallery beside the recipe is not read ({e}); the run goes on without its paper figures");
            None
        }
    }
}

/// The paper's figures beside the ones this run measured (a figure the run cannot give is said,
/// never the end of the run: its report and model files still get written).
fn print_gallery_figures(entry: &crate::gallery::Entry, rep: &crate::experiment::Report, models: &[crate::inspect::StageModel], norm: crate::data::Normalization) {
    let facts: Vec<crate::gallery::ModelFacts> = models.iter().map(|m| crate::gallery::ModelFacts { stage: m.stage, parameters: m.net.parameter_count(), file_bytes: crate::export::save(m, norm).len(), flops: m.net.forward_flops() }).collect();
    let report = serde_json::to_value(rep).expect("serializable");
    println!("gallery: {} ({})", entry.title, entry.paper);
    match crate::gallery::figures(&entry.figures, &report, &facts) {
        Ok(figures) => {
            for f in figures {
                let verdict = match (f.met, &f.target) {
                    (Some(met), Some(t)) => format!(" | target {t}: {}", if met { "met" } else { "MISSED" }),
                    _ => String::new(),
                };
                println!("  {}: paper {} | measured {}{verdict}", f.label, f.paper, f.measured);
            }
        }
        Err(e) => println!("  the paper's figures could not be measured on this run: {e}"),
    }
}

/// The CPU backend allocates large per-step buffers (im2col matrices of tens of MB); by default
/// glibc maps and unmaps each one, page-faulting it in every step (25% of a vgg-mini step).
/// Keeping freed memory in the heap instead makes the CPU backend about 1.25x faster.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
