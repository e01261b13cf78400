//! pg_ecom_finetune: fine-tunes the BERT encoder on behaviour events of
//! meta-train tenants, with a time budget and a resumable checkpoint.
//! `scripts/finetune` runs it between exporting the events from the
//! database and exporting the weights to ONNX (docs/finetune.md).

mod adam;
mod bert;
mod data;
mod train;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: pg_ecom_finetune --data EVENTS.csv --weights DIR --out DIR [options]
       pg_ecom_finetune --embed TEXTS.txt --weights DIR [--trained FILE]
                           (one embedding per line, as JSON; FILE: a checkpoint's weights)

  --data FILE          CSV with a header: tenant,context,item,behaviour,label
  --weights DIR        config.json, model.safetensors and tokenizer.json of the encoder
  --out DIR            checkpoint directory (created; --resume continues one)
  --steps N            optimisation steps (default 300)
  --time-budget SECS   stop at the first validation after this long, counting the
                       reading and the first fit, and earlier runs when resumed (default: none)
  --batch N            events per tenant episode (default 32)
  --lr X               encoder learning rate (default 3e-5)
  --head-lr X          auxiliary head learning rate (default 1e-3)
  --train-layers N     how many of the top layers are trained (default 2)
  --contrastive X      weight of the in-batch contrastive term (default 0.1)
  --temperature X      of the contrastive term (default 0.05)
  --max-tokens N       truncation while training (default 64)
  --eval-every N       steps between validations and checkpoints (default 25)
  --patience N         stop after N validations without a better one (default 4; 0: never)
  --val-share X        share of tenants held out for validation (default 0.15; 0: none,
                       and the last weights are kept)
  --context-prefix S, --item-prefix S   what the encoder's manifest puts before each role
  --episodes mixed|tenant  a batch across tenants, or from one tenant (default mixed)
  --seed N             (default 1)
  --resume             continue the checkpoint in --out
  --device cpu|cuda    (default cpu; cuda needs the cuda feature)";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Args {
    data: String,
    weights: String,
    out: String,
    steps: usize,
    time_budget: Option<f64>,
    batch: usize,
    lr: f64,
    head_lr: f64,
    train_layers: usize,
    contrastive: f64,
    temperature: f64,
    max_tokens: usize,
    eval_every: usize,
    val_share: f64,
    context_prefix: String,
    item_prefix: String,
    seed: u64,
    /// batches from one tenant at a time, or across tenants
    episodes: String,
    /// validations without a better checkpoint before stopping (0: never)
    patience: usize,
    #[serde(skip)]
    resume: bool,
    #[serde(skip)]
    device: String,
    #[serde(skip)]
    embed: Option<String>,
    #[serde(skip)]
    trained: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        data: String::new(),
        weights: String::new(),
        out: String::new(),
        steps: 300,
        time_budget: None,
        batch: 32,
        lr: 3e-5,
        head_lr: 1e-3,
        train_layers: 2,
        contrastive: 0.1,
        temperature: 0.05,
        max_tokens: 64,
        eval_every: 25,
        val_share: 0.15,
        context_prefix: String::new(),
        item_prefix: String::new(),
        seed: 1,
        episodes: "mixed".into(),
        patience: 4,
        resume: false,
        device: "cpu".into(),
        embed: None,
        trained: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--resume" {
            a.resume = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: \"{v}\" is not a number"))
        };
        let int = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: \"{v}\" is not a whole number"))
        };
        match flag.as_str() {
            "--data" => a.data = val,
            "--weights" => a.weights = val,
            "--out" => a.out = val,
            "--steps" => a.steps = int(&val)?,
            "--time-budget" => a.time_budget = Some(num(&val)?),
            "--batch" => a.batch = int(&val)?,
            "--lr" => a.lr = num(&val)?,
            "--head-lr" => a.head_lr = num(&val)?,
            "--train-layers" => a.train_layers = int(&val)?,
            "--contrastive" => a.contrastive = num(&val)?,
            "--temperature" => a.temperature = num(&val)?,
            "--max-tokens" => a.max_tokens = int(&val)?,
            "--eval-every" => a.eval_every = int(&val)?,
            "--val-share" => a.val_share = num(&val)?,
            "--context-prefix" => a.context_prefix = val,
            "--item-prefix" => a.item_prefix = val,
            "--seed" => a.seed = int(&val)? as u64,
            "--patience" => a.patience = int(&val)?,
            "--device" => a.device = val,
            "--episodes" if val == "tenant" || val == "mixed" => a.episodes = val,
            "--episodes" => return Err(format!("--episodes {val}: tenant or mixed")),
            "--embed" => a.embed = Some(val),
            "--trained" => a.trained = Some(val),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.weights.is_empty() {
        return Err("--weights is required".into());
    }
    if a.embed.is_none() && (a.data.is_empty() || a.out.is_empty()) {
        return Err("--data and --out are required".into());
    }
    if a.batch < 2 || a.max_tokens < 8 || a.eval_every == 0 || a.steps == 0 {
        return Err("--batch must be at least 2, --max-tokens at least 8, --steps and --eval-every positive".into());
    }
    // written so that NaN fails too
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let valid = positive(a.temperature)
        && positive(a.lr)
        && positive(a.head_lr)
        && a.contrastive.is_finite()
        && a.contrastive >= 0.0;
    if !valid {
        return Err(
            "--temperature, --lr and --head-lr must be positive, --contrastive not negative".into(),
        );
    }
    if !(0.0..1.0).contains(&a.val_share) {
        return Err("--val-share must lie in [0, 1)".into());
    }
    Ok(a)
}

/// What a checkpoint records beside the tensors.
#[derive(Serialize, Deserialize)]
struct State {
    args: Args,
    step: usize,
    best_step: usize,
    best_auc: Option<f64>,
    stock_auc: Option<f64>,
    rng: data::Rng,
    examples: u64,
    seconds: f64,
    events: usize,
    /// the directory (under --out) of this state's tensors
    checkpoint: String,
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pg_ecom_finetune: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(a) {
        eprintln!("pg_ecom_finetune: {e}");
        std::process::exit(1);
    }
}

fn device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}")),
        other => Err(format!("--device {other}: cpu or cuda")),
    }
}

fn tokenizer(weights: &Path) -> Result<tokenizers::Tokenizer, String> {
    let mut tok = tokenizers::Tokenizer::from_file(weights.join("tokenizer.json"))
        .map_err(|e| format!("tokenizer.json: {e}"))?;
    // the extension pads and truncates itself (src/encoder/tokenize.rs)
    tok.with_padding(None);
    tok.with_truncation(None).map_err(|e| e.to_string())?;
    Ok(tok)
}

fn run(a: Args) -> Result<(), String> {
    let e = |x: candle_core::Error| x.to_string();
    let dev = device(&a.device)?;
    let weights = PathBuf::from(&a.weights);
    let cfg: bert::Config = serde_json::from_str(
        &std::fs::read_to_string(weights.join("config.json"))
            .map_err(|e| format!("config.json: {e}"))?,
    )
    .map_err(|e| format!("config.json: {e}"))?;
    let tok = tokenizer(&weights)?;
    if a.max_tokens > cfg.max_position_embeddings {
        return Err(format!(
            "--max-tokens must be at most {} (the model's positions)",
            cfg.max_position_embeddings
        ));
    }
    if a.train_layers == 0 || a.train_layers > cfg.num_hidden_layers {
        return Err(format!(
            "--train-layers must lie in 1..={}",
            cfg.num_hidden_layers
        ));
    }
    let stock = weights.join("model.safetensors");
    if let Some(texts) = &a.embed {
        let from = a.trained.as_ref().map_or(stock.clone(), PathBuf::from);
        return embed_lines(&cfg, &tok, &from, texts, a.max_tokens, &dev);
    }
    let out = PathBuf::from(&a.out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let state_path = out.join("state.json");
    let resumed: Option<State> = if a.resume && state_path.is_file() {
        let s: State =
            serde_json::from_str(&std::fs::read_to_string(&state_path).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{}: {e}", state_path.display()))?;
        let mut want = a.clone();
        // a longer run or budget may continue a checkpoint; nothing else may change
        want.steps = s.args.steps;
        want.time_budget = s.args.time_budget;
        // what is serialized is what must match (not --resume, --device)
        if serde_json::to_value(&want).ok() != serde_json::to_value(&s.args).ok() {
            return Err(format!(
                "--resume: the checkpoint in {} was made with other options: {}",
                out.display(),
                serde_json::to_string(&s.args).unwrap()
            ));
        }
        Some(s)
    } else {
        None
    };

    let t0 = Instant::now();
    let ev = data::read(
        &a.data,
        &tok,
        a.max_tokens,
        (&a.context_prefix, &a.item_prefix),
    )?;
    if let Some(s) = &resumed {
        if s.events != ev.events.len() {
            return Err(format!(
                "--resume: the checkpoint saw {} events, {} holds {}",
                s.events,
                a.data,
                ev.events.len()
            ));
        }
    }
    // the core's generator xors its seed with this constant: undone, the
    // draws are those of the runs benches/EVAL.md reports
    let mut rng =
        data::Rng::new(a.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15);
    let (train, val) = data::split(&ev, a.val_share, &mut rng);
    if train.is_empty() {
        return Err("no training events once validation tenants are set aside".into());
    }
    let bt = data::by_tenant(&ev, &train);
    // a fixed sample, across the validation tenants, judges every
    // checkpoint alike; drawn with a generator of its own, so that the
    // batches do not depend on how many validation events there are
    let val = data::sample(val, 1500, &mut data::Rng::new(a.seed));
    progress(&format!(
        "{} events ({} training, {} validation) of {} tenants, {} distinct texts, read in {:.1}s",
        ev.events.len(),
        train.len(),
        val.len(),
        ev.tenants.len(),
        ev.texts.len(),
        t0.elapsed().as_secs_f64()
    ));

    let from = match &resumed {
        Some(s) => out.join(&s.checkpoint).join("last.safetensors"),
        None => stock.clone(),
    };
    let model = train::Model::new(
        &cfg,
        from.to_str().unwrap(),
        a.train_layers,
        ev.tenants.len(),
        &dev,
    )
    .map_err(e)?;
    let mut params: Vec<(String, candle_core::Var, f64)> = model
        .trained_vars()
        .into_iter()
        .map(|(n, v)| (n, v, a.lr))
        .collect();
    params.push(("aux.w".into(), model.w.clone(), a.head_lr));
    params.push(("aux.c".into(), model.c.clone(), a.head_lr));
    params.push(("aux.tb".into(), model.tb.clone(), a.head_lr));
    let mut opt = adam::Adam::new(params).map_err(e)?;

    let mut st = match resumed {
        Some(mut s) => {
            let dir = out.join(&s.checkpoint);
            let aux =
                candle_core::safetensors::load(dir.join("aux.safetensors"), &dev).map_err(e)?;
            model.w.set(&aux["w"]).map_err(e)?;
            model.c.set(&aux["c"]).map_err(e)?;
            model.tb.set(&aux["tb"]).map_err(e)?;
            let moments =
                candle_core::safetensors::load(dir.join("adam.safetensors"), &dev).map_err(e)?;
            opt.restore(&moments, s.step).map_err(e)?;
            rng = s.rng.clone();
            s.args.steps = a.steps;
            s.args.time_budget = a.time_budget;
            progress(&format!(
                "resuming at step {} (best validation AUC {:?} at step {})",
                s.step, s.best_auc, s.best_step
            ));
            s
        }
        None => {
            let warm: Vec<usize> = train
                .iter()
                .copied()
                .step_by((train.len() / 3000).max(1))
                .collect();
            let t = Instant::now();
            model.warm_start(&ev, &warm, 300).map_err(e)?;
            let stock_auc = if val.is_empty() {
                None
            } else {
                model.auc(&ev, &val).map_err(e)?
            };
            progress(&format!(
                "auxiliary head fitted on the stock encoder ({} events, {:.1}s): validation AUC {}",
                warm.len(),
                t.elapsed().as_secs_f64(),
                fmt_auc(stock_auc)
            ));
            let mut s = State {
                args: a.clone(),
                step: 0,
                best_step: 0,
                best_auc: stock_auc,
                stock_auc,
                rng: rng.clone(),
                examples: 0,
                seconds: t0.elapsed().as_secs_f64(),
                events: ev.events.len(),
                checkpoint: String::new(),
            };
            // step 0: the stock encoder is the best so far
            checkpoint(&model, &opt, &mut s, &out, true)?;
            s
        }
    };

    // the budget is the run's whole wall time: reading the events and the
    // auxiliary head's first fit count too, and earlier runs when resumed
    let run_start = t0;
    let before = if st.step == 0 { 0.0 } else { st.seconds };
    let warmup = (a.steps / 20).max(1);
    let mut stopped = "steps";
    let (mut sum_bce, mut sum_nce, mut n_loss, mut window_examples, mut window_t) =
        (0f64, 0f64, 0usize, 0u64, Instant::now());
    while st.step < a.steps {
        let batch = if a.episodes == "tenant" {
            data::episode(&ev, &bt, &train, a.batch, &mut rng)
        } else {
            data::mixed(&train, a.batch, &mut rng)
        };
        let l = model
            .loss(&ev, &batch, a.contrastive, a.temperature)
            .map_err(e)?;
        let grads = l.total.backward().map_err(e)?;
        let s = st.step as f64;
        let scale = if st.step < warmup {
            (s + 1.0) / warmup as f64
        } else {
            1.0 - 0.9 * (s - warmup as f64) / (a.steps - warmup).max(1) as f64
        };
        opt.step(&grads, scale).map_err(e)?;
        st.step += 1;
        st.examples += batch.len() as u64;
        window_examples += batch.len() as u64;
        sum_bce += l.bce as f64;
        sum_nce += l.nce as f64;
        n_loss += 1;
        let elapsed = before + run_start.elapsed().as_secs_f64();
        if st.step % a.eval_every == 0 || st.step == a.steps {
            // checked at validations only: what stops the run is the
            // first validation after the budget
            let over_budget = a.time_budget.is_some_and(|b| elapsed >= b);
            let auc = if val.is_empty() {
                None
            } else {
                model.auc(&ev, &val).map_err(e)?
            };
            let better = match (auc, st.best_auc) {
                (Some(x), Some(b)) => x > b,
                (Some(_), None) => true,
                // with nothing to validate on, the latest weights are kept
                (None, _) => true,
            };
            if better {
                st.best_auc = auc;
                st.best_step = st.step;
            }
            let rate = window_examples as f64 / window_t.elapsed().as_secs_f64().max(1e-9);
            progress(&format!(
                "step {}/{}  loss {:.4} (labels {:.4}, contrastive {:.4})  {:.1} examples/s  validation AUC {} (stock {}, best {} at step {})  {:.0}s",
                st.step,
                a.steps,
                (sum_bce + a.contrastive * sum_nce) / n_loss as f64,
                sum_bce / n_loss as f64,
                sum_nce / n_loss as f64,
                rate,
                fmt_auc(auc),
                fmt_auc(st.stock_auc),
                fmt_auc(st.best_auc),
                st.best_step,
                elapsed
            ));
            (sum_bce, sum_nce, n_loss, window_examples, window_t) =
                (0.0, 0.0, 0, 0, Instant::now());
            st.seconds = elapsed;
            st.rng = rng.clone();
            checkpoint(&model, &opt, &mut st, &out, better)?;
            if over_budget {
                stopped = "time budget";
                break;
            }
            // the best checkpoint is kept whatever comes later: once
            // validation has stopped improving, more steps only cost time
            if a.patience > 0
                && auc.is_some()
                && st.step >= st.best_step + a.patience * a.eval_every
            {
                stopped = "patience";
                break;
            }
        }
    }
    st.seconds = before + run_start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "steps": st.step,
        "stopped_by": stopped,
        "examples": st.examples,
        "seconds": (st.seconds * 10.0).round() / 10.0,
        "examples_per_second": (st.examples as f64 / st.seconds.max(1e-9) * 10.0).round() / 10.0,
        "stock_validation_auc": st.stock_auc,
        "best_validation_auc": st.best_auc,
        "best_step": st.best_step,
        "weights": out.join("best.safetensors"),
        "train_layers": a.train_layers,
        "tenants": ev.tenants.len(),
        "events": ev.events.len(),
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(())
}

fn fmt_auc(a: Option<f64>) -> String {
    a.map_or("-".into(), |x| format!("{x:.4}"))
}

fn progress(msg: &str) {
    eprintln!("finetune: {msg}");
}

fn save_tensors(vm: &candle_nn::VarMap, path: &Path) -> Result<(), String> {
    // write then rename: a run killed mid-write leaves the last good file
    let tmp = path.with_extension("tmp");
    vm.save(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

fn save_map(map: &HashMap<String, Tensor>, path: &Path) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    candle_core::safetensors::save(map, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Everything a resumed run needs, in a directory of its own
/// (`ckpt-<step>`): the weights, the auxiliary head, the moments and the
/// best weights so far. state.json, renamed into place last, names it, so a
/// run killed at any moment leaves a state and the tensors it describes.
/// `best.safetensors` at the top is then a link to the named directory's
/// best weights, for the export.
fn checkpoint(
    model: &train::Model,
    opt: &adam::Adam,
    st: &mut State,
    out: &Path,
    is_best: bool,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let name = format!("ckpt-{}", st.step);
    let dir = out.join(&name);
    let tmp = out.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io)?;
    }
    std::fs::create_dir_all(&tmp).map_err(io)?;
    save_tensors(&model.varmap, &tmp.join("last.safetensors"))?;
    let aux: HashMap<String, Tensor> = [
        ("w".to_string(), model.w.as_tensor().clone()),
        ("c".to_string(), model.c.as_tensor().clone()),
        ("tb".to_string(), model.tb.as_tensor().clone()),
    ]
    .into();
    save_map(&aux, &tmp.join("aux.safetensors"))?;
    save_map(&opt.state(), &tmp.join("adam.safetensors"))?;
    if is_best || st.checkpoint.is_empty() {
        std::fs::hard_link(tmp.join("last.safetensors"), tmp.join("best.safetensors"))
            .map_err(io)?;
    } else {
        std::fs::hard_link(
            out.join(&st.checkpoint).join("best.safetensors"),
            tmp.join("best.safetensors"),
        )
        .map_err(io)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io)?;
    }
    std::fs::rename(&tmp, &dir).map_err(io)?;
    st.checkpoint = name.clone();
    let state_tmp = out.join("state.json.tmp");
    std::fs::write(&state_tmp, serde_json::to_string_pretty(st).unwrap()).map_err(io)?;
    std::fs::rename(&state_tmp, out.join("state.json")).map_err(io)?;
    // the state no longer names the older directories
    for e in std::fs::read_dir(out).map_err(io)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("ckpt-") && n != name {
            std::fs::remove_dir_all(e.path()).map_err(io)?;
        }
    }
    let link = out.join("best.safetensors.tmp");
    let _ = std::fs::remove_file(&link);
    std::fs::hard_link(dir.join("best.safetensors"), &link).map_err(io)?;
    std::fs::rename(&link, out.join("best.safetensors")).map_err(io)?;
    // rename() between two links of one file does nothing: the best
    // weights did not change, and the spare link goes
    let _ = std::fs::remove_file(&link);
    Ok(())
}

/// Embeds each line of a file with the given weights, cut to `max_tokens`
/// as the extension cuts: what scripts/finetune compares with the ONNX
/// export (models/check_finetuned.py), so that the model trained here is
/// the model served.
fn embed_lines(
    cfg: &bert::Config,
    tok: &tokenizers::Tokenizer,
    weights: &Path,
    texts: &str,
    max_tokens: usize,
    dev: &Device,
) -> Result<(), String> {
    let e = |x: candle_core::Error| x.to_string();
    let model = train::Model::new(cfg, weights.to_str().unwrap(), 1, 1, dev).map_err(e)?;
    let lines: Vec<String> = std::fs::read_to_string(texts)
        .map_err(|e| format!("{texts}: {e}"))?
        .lines()
        .map(str::to_owned)
        .collect();
    let enc = tok
        .encode_batch(lines.clone(), true)
        .map_err(|e| e.to_string())?;
    for ids in enc {
        let b = bert::pad(&[data::truncate(ids.get_ids(), max_tokens)], dev).map_err(e)?;
        let v: Vec<f32> = model
            .bert
            .embed(&b, 0)
            .map_err(e)?
            .get(0)
            .map_err(e)?
            .to_vec1()
            .map_err(e)?;
        println!("{}", serde_json::to_string(&v).unwrap());
    }
    Ok(())
}
