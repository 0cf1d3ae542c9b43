//! The custom ops against PyTorch (F.interpolate bilinear align_corners=False,
//! F.max_pool2d(return_indices=True), F.max_unpool2d) and their autograd gradients.
//! Values from golden/make_golden.py → golden/ops_golden.safetensors.

use candle_core::{Device, Tensor, Var};
use std::collections::HashMap;
use xnet_model::ops::{max_pool2d_with_indices, max_unpool2d, resize_bilinear};

mod common;
use common::{grads_of_weighted_sum, max_abs_diff as max_diff};

fn golden() -> HashMap<String, Tensor> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/ops_golden.safetensors"
    );
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

#[test]
fn bilinear_matches_pytorch_forward_and_backward() {
    let g = golden();
    for i in 0..4 {
        let x = &g[&format!("bilinear{i}.x")];
        let y = &g[&format!("bilinear{i}.y")];
        let (_, _, oh, ow) = y.dims4().unwrap();
        let xv = Var::from_tensor(x).unwrap();
        let out = resize_bilinear(xv.as_tensor(), oh, ow).unwrap();
        assert!(max_diff(&out, y) < 1e-12, "case {i} forward");
        let gy = &g[&format!("bilinear{i}.gy")];
        let grads = grads_of_weighted_sum(&out, gy);
        assert!(
            max_diff(
                grads.get(xv.as_tensor()).unwrap(),
                &g[&format!("bilinear{i}.gx")]
            ) < 1e-12,
            "case {i} backward"
        );
    }
}

#[test]
fn pooling_indices_and_unpooling_match_pytorch() {
    let g = golden();
    for i in 0..2 {
        let x = &g[&format!("pool{i}.x")];
        let xv = Var::from_tensor(x).unwrap();
        let (v, idx) = max_pool2d_with_indices(xv.as_tensor(), 2).unwrap();
        assert!(max_diff(&v, &g[&format!("pool{i}.v")]) == 0.0);
        let want: Vec<i64> = g[&format!("pool{i}.idx")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got: Vec<u32> = idx.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.iter().map(|&v| v as i64).collect::<Vec<_>>(), want);
        let gv = &g[&format!("pool{i}.gv")];
        let grads = (&v * gv).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(
            max_diff(
                grads.get(xv.as_tensor()).unwrap(),
                &g[&format!("pool{i}.gx")]
            ) == 0.0
        );
        let (_, _, h, w) = x.dims4().unwrap();
        let u = max_unpool2d(&v, &idx, (h, w)).unwrap();
        assert!(max_diff(&u, &g[&format!("pool{i}.unpooled")]) == 0.0);
    }
}
