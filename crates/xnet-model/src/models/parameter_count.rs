//! A network's parameter count from its configuration alone, and the ceiling on it.
//!
//! Every field of a configuration can be within its own bounds while the whole is absurd:
//! an XNet with `base_width` 1024 and `kernel_size` 31 has 8192-channel layers of 31×31
//! kernels, 2.4·10¹¹ weights (a terabyte of `f32`). Building it would abort the process on
//! the failed allocation instead of returning an error. The networks' `validate` therefore
//! counts the weights by building the network once against the backend that checkpoint
//! loading uses to list the expected shapes (it hands out zero-strided views of a single
//! zero, so nothing of the count's size is allocated), and refuses a count above
//! [`MAX_PARAMETERS`].

use candle_nn::VarBuilder;

use crate::error::ModelError;
use crate::Result;

/// The most trainable parameters a network may have: 2³⁰ (about 1.07·10⁹, 4 GiB of `f32`
/// weights and 12 GiB more for Adam's moments and the gradients). The paper's XNet has
/// 11.7 M, the PyTorch twins' U-Net and SegNet 8.6 M and 5.5 M; a configuration beyond the
/// ceiling is a typo or a corrupt `config.json` and is refused before anything is allocated.
pub const MAX_PARAMETERS: u64 = 1 << 30;

/// The trainable parameters `assemble` creates (batch-norm running statistics are stored but
/// not trained, as in `count_trainable_parameters`), counted from the shapes it asks for
/// ([`crate::checkpoint::expected_shapes`]: nothing of their size is allocated). `assemble`
/// must not compute with its weights.
pub(crate) fn count_parameters<T>(assemble: impl FnOnce(VarBuilder) -> Result<T>) -> Result<u64> {
    let shapes = crate::checkpoint::expected_shapes(|vb| assemble(vb).map(|_| ()))?;
    Ok(shapes
        .iter()
        .filter(|(name, _)| super::is_trainable(name))
        .map(|(_, dims)| dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64)))
        .fold(0, u64::saturating_add))
}

/// Refuses a count above [`MAX_PARAMETERS`], naming the network and the fields that set it.
pub(crate) fn check_parameter_count(arch: &str, count: u64, fields: &str) -> Result<()> {
    if count > MAX_PARAMETERS {
        return Err(ModelError::InvalidConfig(format!(
            "{arch}: the configuration has {count:.3e} parameters ({:.1} GB of f32 weights); at \
             most {MAX_PARAMETERS} (2^30) are accepted. {fields} set the count",
            count as f64 * 4e-9,
            count = count as f64
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{
        count_trainable_parameters, DeepLabConfig, ModelConfig, SegNetConfig, UNetConfig,
        Upsampling, XNetConfig,
    };
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Small configurations of every network and up-sampling kind.
    fn small_configs() -> Vec<ModelConfig> {
        let mut v = Vec::new();
        for up in [
            Upsampling::Nearest,
            Upsampling::Bilinear,
            Upsampling::TransposedConv,
        ] {
            v.push(ModelConfig::XNet(XNetConfig {
                base_width: 3,
                kernel_size: 5,
                in_channels: 2,
                upsampling: up,
                ..Default::default()
            }));
            v.push(ModelConfig::UNet(UNetConfig {
                base_width: 4,
                depth: 2,
                upsampling: up,
                ..Default::default()
            }));
        }
        let segnet = SegNetConfig {
            encoder: vec![vec![4, 5], vec![6]],
            center: vec![7],
            decoder: vec![vec![3], vec![5, 4]],
            kernel_size: 3,
            ..SegNetConfig::basic()
        };
        for up in [Upsampling::Nearest, Upsampling::TransposedConv] {
            v.push(ModelConfig::SegNet(SegNetConfig {
                upsampling: up,
                ..segnet.clone()
            }));
        }
        v.push(ModelConfig::SegNet(SegNetConfig {
            encoder: vec![vec![4], vec![6]],
            center: vec![],
            decoder: vec![vec![4], vec![4]],
            ..SegNetConfig::basic()
        }));
        v.push(ModelConfig::DeepLab(DeepLabConfig {
            encoder_widths: vec![4, 6],
            aspp_channels: 5,
            num_classes: 4,
            ..Default::default()
        }));
        v
    }

    #[test]
    fn the_count_from_the_configuration_is_the_count_of_the_built_network() {
        for cfg in small_configs() {
            let vm = VarMap::new();
            cfg.build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
                .unwrap();
            let built = count_trainable_parameters(&vm) as u64;
            assert_eq!(cfg.parameter_count().unwrap(), built, "{cfg:?}");
        }
    }

    #[test]
    fn configurations_above_the_ceiling_are_refused_before_allocating() {
        let absurd = [
            ModelConfig::XNet(XNetConfig {
                base_width: 1024,
                kernel_size: 31,
                ..Default::default()
            }),
            ModelConfig::UNet(UNetConfig {
                base_width: 512,
                depth: 4,
                kernel_size: 9,
                ..Default::default()
            }),
            ModelConfig::DeepLab(DeepLabConfig {
                encoder_widths: vec![8192; 8],
                aspp_channels: 8192,
                kernel_size: 31,
                ..Default::default()
            }),
        ];
        for cfg in absurd {
            let n = cfg.parameter_count().unwrap();
            assert!(n > MAX_PARAMETERS, "{n} for {cfg:?}");
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("parameters") && e.contains("2^30"), "{e}");
            // `build` refuses it as well, with the same error and without allocating.
            let vm = VarMap::new();
            let built = cfg.build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu));
            assert_eq!(built.err().map(|e| e.to_string()), Some(e));
            assert!(vm.all_vars().is_empty());
        }
    }

    #[test]
    fn a_configuration_at_the_ceiling_is_accepted_and_field_errors_come_first() {
        // 2^30 exactly is accepted: check_parameter_count refuses only what is above it.
        assert!(check_parameter_count("XNet", MAX_PARAMETERS, "fields").is_ok());
        assert!(check_parameter_count("XNet", MAX_PARAMETERS + 1, "fields").is_err());
        let even = ModelConfig::UNet(UNetConfig {
            kernel_size: 4,
            ..Default::default()
        });
        let e = even.parameter_count().unwrap_err().to_string();
        assert!(e.contains("kernel_size must be odd"), "{e}");
    }
}
