//! Optimisers and schedules against torch.optim; golden data made by
//! `tests/golden/optim/make_optim_golden.py`. Closed-form cases for clipping.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use xnet_model::optim::{clip_grad_norm, LrSchedule, LrScheduler, Optimizer, OptimizerConfig};

const GOLDEN: &str = include_str!("golden/optim/optim_golden.json");

fn golden() -> serde_json::Value {
    serde_json::from_str(GOLDEN).unwrap()
}

fn vec_of(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn config_for(name: &str) -> OptimizerConfig {
    match name {
        "adam" => OptimizerConfig::adam(0.01),
        "adam_wd" => OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.8,
            beta2: 0.95,
            eps: 1e-6,
            weight_decay: 0.1,
        },
        "adamw" => OptimizerConfig::AdamW {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        },
        "rmsprop_keras" => OptimizerConfig::rmsprop(1e-3),
        "rmsprop_centered_momentum" => OptimizerConfig::RmsProp {
            lr: 1e-3,
            alpha: 0.95,
            eps: 1e-6,
            momentum: 0.9,
            centered: true,
        },
        "sgd" => OptimizerConfig::sgd(0.1, 0.0),
        "sgd_momentum" => OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.1,
            nesterov: false,
            weight_decay: 0.01,
        },
        "sgd_nesterov" => OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
        other => panic!("no config for {other}"),
    }
}

/// Gradients equal to `g`: the gradient of `Σ p·g`.
fn grads_for(p: &Var, g: &[f64]) -> GradStore {
    let gt = Tensor::from_slice(g, g.len(), &Device::Cpu).unwrap();
    (p.as_tensor() * gt)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}

#[test]
fn optimisers_match_torch_optim() {
    let g = golden();
    let p0 = vec_of(&g["p0"]);
    let grads: Vec<Vec<f64>> = g["grads"].as_array().unwrap().iter().map(vec_of).collect();
    let runs = g["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 8);
    for (name, run) in runs {
        let p = Var::from_slice(&p0, p0.len(), &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(config_for(name), vec![("p".into(), p.clone())]).unwrap();
        for (step, (gr, expected)) in grads
            .iter()
            .zip(run["params"].as_array().unwrap())
            .enumerate()
        {
            opt.step(&grads_for(&p, gr)).unwrap();
            let got = p.as_tensor().to_vec1::<f64>().unwrap();
            for (i, (a, b)) in got.iter().zip(vec_of(expected)).enumerate() {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{name} step {step} param {i}: {a} vs {b}"
                );
            }
        }
        assert_eq!(opt.steps(), grads.len() as u64);
    }
}

#[test]
fn optimizer_state_round_trips() {
    let g = golden();
    let p0 = vec_of(&g["p0"]);
    let grads: Vec<Vec<f64>> = g["grads"].as_array().unwrap().iter().map(vec_of).collect();
    let dir = std::env::temp_dir().join(format!("xnet-optim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opt.safetensors");
    for name in ["adam", "rmsprop_centered_momentum", "sgd_momentum"] {
        let p = Var::from_slice(&p0, p0.len(), &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(config_for(name), vec![("p".into(), p.clone())]).unwrap();
        for gr in &grads[..2] {
            opt.step(&grads_for(&p, gr)).unwrap();
        }
        opt.save_state(&path).unwrap();
        // A fresh optimiser over a copy of the parameters continues identically.
        let q = Var::from_tensor(&p.as_tensor().copy().unwrap()).unwrap();
        let mut resumed = Optimizer::new(config_for(name), vec![("p".into(), q.clone())]).unwrap();
        resumed.load_state(&path, &Device::Cpu).unwrap();
        assert_eq!(resumed.steps(), 2);
        for gr in &grads[2..] {
            opt.step(&grads_for(&p, gr)).unwrap();
            resumed.step(&grads_for(&q, gr)).unwrap();
        }
        let expected = vec_of(&g["runs"][name]["params"][grads.len() - 1]);
        let got = q.as_tensor().to_vec1::<f64>().unwrap();
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
        // State for a differently-shaped variable is refused, naming the tensor.
        let r = Var::zeros(3, candle_core::DType::F64, &Device::Cpu).unwrap();
        let mut other = Optimizer::new(config_for(name), vec![("p".into(), r)]).unwrap();
        let e = other
            .load_state(&path, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p/") && e.contains("[6]") && e.contains("[3]"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The `run_weights` fuzz target's finding: `load_state` restored moments that no step can
/// run with (a negative `exp_avg_sq`, whose square root is NaN; NaN or infinite moments) and
/// step counts that are no count (NaN, negative, fractional: cast to `u64` as 0 or truncated),
/// and a step of another shape failed with candle's error, naming no file. A moment the
/// optimiser keeps, missing for a variable that has taken steps, restarted from zero unseen.
/// Each is refused, naming the file and the tensor, and the optimiser keeps its state.
#[test]
fn damaged_optimizer_state_is_refused() {
    use candle_core::DType;
    use std::collections::HashMap;
    let g = golden();
    let p0 = vec_of(&g["p0"]);
    let grads: Vec<Vec<f64>> = g["grads"].as_array().unwrap().iter().map(vec_of).collect();
    let dir = std::env::temp_dir().join(format!("xnet-optim-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("optimizer.safetensors");
    let dev = Device::Cpu;
    for name in ["adam", "rmsprop_centered_momentum"] {
        let p = Var::from_slice(&p0, p0.len(), &dev).unwrap();
        let mut opt = Optimizer::new(config_for(name), vec![("p".into(), p.clone())]).unwrap();
        for gr in &grads[..2] {
            opt.step(&grads_for(&p, gr)).unwrap();
        }
        let good = opt.state_tensors().unwrap();
        let squared = if name == "adam" {
            "exp_avg_sq"
        } else {
            "square_avg"
        };
        let with_value = |key: &str, i: usize, v: f64| {
            let mut t = good.clone();
            let mut values = t[key]
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            values[i] = v;
            t.insert(key.into(), Tensor::new(values, &dev).unwrap());
            t
        };
        let with_step = |step: Tensor| {
            let mut t = good.clone();
            t.insert("p/step".into(), step);
            t
        };
        let first_moment = if name == "adam" {
            "p/exp_avg"
        } else {
            "p/grad_avg"
        };
        // A moment this optimiser keeps, gone: it would restart from zero unseen.
        let without = |key: &str| {
            let mut t = good.clone();
            t.remove(key);
            t
        };
        let cases: Vec<(String, HashMap<String, Tensor>, &str)> = vec![
            (
                format!("negative {squared}"),
                with_value(&format!("p/{squared}"), 3, -1e-3),
                "negative",
            ),
            (
                format!("NaN in {first_moment}"),
                with_value(first_moment, 0, f64::NAN),
                "NaN",
            ),
            (
                format!("infinite {squared}"),
                with_value(&format!("p/{squared}"), 5, f64::INFINITY),
                "inf",
            ),
            (
                format!("no {first_moment}"),
                without(first_moment),
                "missing",
            ),
            (
                format!("no {squared}"),
                without(&format!("p/{squared}")),
                "missing",
            ),
            (
                "NaN step".into(),
                with_step(Tensor::new(f64::NAN, &dev).unwrap()),
                "step",
            ),
            (
                "negative step".into(),
                with_step(Tensor::new(-1f64, &dev).unwrap()),
                "step",
            ),
            (
                "fractional step".into(),
                with_step(Tensor::new(1.5f64, &dev).unwrap()),
                "step",
            ),
            (
                "step of shape [2]".into(),
                with_step(Tensor::new(&[2f64, 2.], &dev).unwrap()),
                "step",
            ),
        ];
        for (what, tensors, says) in cases {
            candle_core::safetensors::save(&tensors, &path).unwrap();
            let q = Var::from_slice(&p0, p0.len(), &dev).unwrap();
            let mut resumed = Optimizer::new(config_for(name), vec![("p".into(), q)]).unwrap();
            let e = match resumed.load_state(&path, &dev) {
                Ok(()) => panic!("{name}: {what} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(&path.display().to_string()) && e.contains("`p/") && e.contains(says),
                "{name}, {what}: {e}"
            );
            assert_eq!(resumed.steps(), 0, "{name}, {what}: state restored in part");
        }
        // Tensors no variable here owns, or no optimiser keeps: another network's file.
        for extra in ["q/step", "p/velocity", "step"] {
            let mut tensors = good.clone();
            tensors.insert(extra.into(), Tensor::new(1f64, &dev).unwrap());
            candle_core::safetensors::save(&tensors, &path).unwrap();
            let q = Var::from_slice(&p0, p0.len(), &dev).unwrap();
            let mut resumed = Optimizer::new(config_for(name), vec![("p".into(), q)]).unwrap();
            let e = match resumed.load_state(&path, &dev) {
                Ok(()) => panic!("{name}: a file with {extra} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(&path.display().to_string())
                    && e.contains("unexpected")
                    && e.contains(&format!("\"{extra}\"")),
                "{name}, {extra}: {e}"
            );
            assert_eq!(
                resumed.steps(),
                0,
                "{name}, {extra}: state restored in part"
            );
        }
        candle_core::safetensors::save(&good, &path).unwrap();
        let q = Var::from_slice(&p0, p0.len(), &dev).unwrap();
        let mut resumed = Optimizer::new(config_for(name), vec![("p".into(), q)]).unwrap();
        resumed.load_state(&path, &dev).unwrap();
        assert_eq!(resumed.steps(), 2);
        // Another configuration's moments are passed over: the centred RMSprop's file
        // resumes an RMSprop that is not centred (its squared average and momentum kept).
        if name == "rmsprop_centered_momentum" {
            let plain = OptimizerConfig::RmsProp {
                lr: 1e-3,
                alpha: 0.95,
                eps: 1e-6,
                momentum: 0.9,
                centered: false,
            };
            let q = Var::from_slice(&p0, p0.len(), &dev).unwrap();
            let mut resumed = Optimizer::new(plain, vec![("p".into(), q)]).unwrap();
            resumed.load_state(&path, &dev).unwrap();
            let state = resumed.state_tensors().unwrap();
            assert!(!state.contains_key("p/grad_avg") && state.contains_key("p/square_avg"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn schedules_match_torch() {
    let g = golden();
    let metrics = vec_of(&g["metrics"]);
    let cases = [
        (
            "plateau",
            LrSchedule::ReduceOnPlateau {
                factor: 0.5,
                patience: 2,
                threshold: 1e-4,
                cooldown: 1,
                min_lr: 0.02,
            },
            metrics.len(),
        ),
        (
            "step",
            LrSchedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
            metrics.len(),
        ),
        // torch's cosine rises again after t_max; ours stays at eta_min (compared up to t_max).
        (
            "cosine",
            LrSchedule::Cosine {
                t_max: 10,
                eta_min: 0.01,
            },
            10,
        ),
    ];
    for (name, schedule, n) in cases {
        let mut s = LrScheduler::new(schedule, 0.1).unwrap();
        let expected = vec_of(&g["schedules"][name]);
        for (epoch, (&m, &e)) in metrics.iter().zip(&expected).take(n).enumerate() {
            let lr = s.step(epoch, Some(m));
            assert!(
                (lr - e).abs() < 1e-12,
                "{name} after epoch {epoch}: {lr} vs {e}"
            );
        }
    }
    let mut cos = LrScheduler::new(
        LrSchedule::Cosine {
            t_max: 10,
            eta_min: 0.01,
        },
        0.1,
    )
    .unwrap();
    for e in 0..20 {
        cos.step(e, None);
    }
    assert_eq!(cos.learning_rate(), 0.01);
    assert!(LrScheduler::new(
        LrSchedule::Step {
            step_size: 0,
            gamma: 0.5
        },
        0.1
    )
    .is_err());
}

#[test]
fn clip_grad_norm_closed_form() {
    let dev = Device::Cpu;
    let a = Var::from_slice(&[3.0f32, 0.0], 2, &dev).unwrap();
    let b = Var::from_slice(&[4.0f32], 1, &dev).unwrap();
    // loss = 3a0 + 4b0  ⇒  grads (3, 0) and (4): global norm 5.
    let ga = Tensor::new(&[3.0f32, 0.0], &dev).unwrap();
    let loss = ((a.as_tensor() * ga).unwrap().sum_all().unwrap()
        + (b.as_tensor() * 4.0).unwrap().sum_all().unwrap())
    .unwrap();
    let mut grads = loss.backward().unwrap();
    let vars = [a.clone(), b.clone()];
    let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0];
    assert!((gb - 4.0 / (5.0 + 1e-6)).abs() < 1e-6);
    // Below the threshold nothing changes.
    let norm2 = clip_grad_norm(&mut grads, &vars, 10.0).unwrap();
    assert!((norm2 - 1.0).abs() < 1e-5);
    assert!((grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0] - gb).abs() < 1e-9);
    assert!(clip_grad_norm(&mut grads, &vars, 0.0).is_err());
}

#[test]
fn configs_validate_and_serialise() {
    assert!(OptimizerConfig::adam(-1.0).validate().is_err());
    assert!(OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 0.0
    }
    .validate()
    .is_err());
    let cfg = OptimizerConfig::default();
    assert_eq!(
        cfg,
        OptimizerConfig::rmsprop(1e-4),
        "the reference used RMSprop, lr 1e-4"
    );
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"kind\":\"rms_prop\""), "{json}");
    assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), cfg);
    // Duplicate names are refused.
    let v = Var::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(Optimizer::new(cfg, vec![("x".into(), v.clone()), ("x".into(), v)]).is_err());
}

/// Centred RMSprop divides by `√(square_avg − grad_avg²)`, a variance that updates keep ≥ 0
/// in exact arithmetic (each step adds `α(1 − α)(grad_avg − g)²` to it) but that f32
/// rounding takes below zero once a gradient has stayed the same for long enough: the
/// two averages then agree to the last bit or two. `torch.optim.RMSprop` takes the square
/// root as it is there and its weights turn NaN; the update here reads a negative variance
/// as zero (the value it approximates), so they stay finite.
#[test]
fn centered_rmsprop_stays_finite_when_the_variance_rounds_below_zero() {
    use candle_core::DType;
    let dev = Device::Cpu;
    let n = 64;
    let g: Vec<f64> = (0..n).map(|i| 0.013 * (i as f64 + 1.0) * 1.37).collect();
    let p = Var::from_tensor(&Tensor::zeros(n, DType::F32, &dev).unwrap()).unwrap();
    let config = OptimizerConfig::RmsProp {
        lr: 1e-6,
        alpha: 0.9,
        eps: 1e-8,
        momentum: 0.0,
        centered: true,
    };
    let mut opt = Optimizer::new(config, vec![("p".into(), p.clone())]).unwrap();
    let gt = Tensor::from_slice(&g, n, &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let mut went_negative = false;
    for step in 0..600 {
        let grads = (p.as_tensor() * &gt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&grads).unwrap();
        let state = opt.state_tensors().unwrap();
        let v = state["p/square_avg"].to_vec1::<f32>().unwrap();
        let m = state["p/grad_avg"].to_vec1::<f32>().unwrap();
        went_negative |= v.iter().zip(&m).any(|(v, m)| v - m * m < 0.0);
        let w = p.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            w.iter().all(|x| x.is_finite()),
            "step {step}: weights not finite"
        );
    }
    assert!(
        went_negative,
        "the case no longer reaches a negative variance; pick another"
    );
}
