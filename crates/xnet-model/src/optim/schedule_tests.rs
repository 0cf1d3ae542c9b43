//! `LrScheduler::new` refuses a base learning rate the `f32` update cannot use, and a step
//! schedule cannot grow the rate past the `f32` range during training (its `gamma` is a
//! decay factor in (0, 1]).

use super::{LrSchedule, LrScheduler};
use crate::ModelError;

fn message<T: std::fmt::Debug>(r: crate::Result<T>) -> String {
    match r {
        Err(e @ ModelError::InvalidConfig(_)) => e.to_string(),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn new_refuses_a_base_lr_that_is_not_a_positive_f32() {
    let beyond_f32 = f64::from(f32::MAX) * 2.0;
    for lr in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e308,
        beyond_f32,
        -1e308,
    ] {
        let m = message(LrScheduler::new(LrSchedule::Constant, lr));
        assert!(
            m.contains("lr scheduler: base_lr must be a finite number no larger than"),
            "{lr}: {m}"
        );
    }
    for lr in [0.0, -0.0, -1e-3, -f64::MIN_POSITIVE] {
        let m = message(LrScheduler::new(LrSchedule::Constant, lr));
        assert!(m.contains("lr scheduler: base_lr must be > 0"), "{lr}: {m}");
    }
    // resumed_at builds its scheduler with new.
    let m = message(LrScheduler::resumed_at(LrSchedule::Constant, 1e308, 5));
    assert!(m.contains("base_lr"), "{m}");
    for lr in [1e-4, 1.0, f64::from(f32::MAX), f64::from(f32::MIN_POSITIVE)] {
        let s = LrScheduler::new(LrSchedule::Constant, lr).unwrap();
        assert_eq!(s.learning_rate(), lr);
    }
}

/// A step schedule with gamma above 1 grew the rate geometrically: from 10⁻³ with gamma 2,
/// past `f32::MAX` (infinity in the update) after 138 steps.
#[test]
fn a_step_schedule_refuses_gamma_above_one() {
    for gamma in [1.0f64.next_up(), 1.5, 2.0, 10.0] {
        let schedule = LrSchedule::Step {
            step_size: 1,
            gamma,
        };
        let m = message(schedule.validate());
        assert!(
            m.contains("step schedule: gamma must be in (0, 1]"),
            "{gamma}: {m}"
        );
        message(LrScheduler::new(schedule, 1e-3));
    }
    for gamma in [0.0, -0.5, f64::NAN] {
        let m = message(
            LrSchedule::Step {
                step_size: 1,
                gamma,
            }
            .validate(),
        );
        assert!(m.contains("step schedule: gamma"), "{gamma}: {m}");
    }
    // gamma = 1 keeps the rate; below 1 it decays as StepLR.
    let mut keep = LrScheduler::new(
        LrSchedule::Step {
            step_size: 1,
            gamma: 1.0,
        },
        1e-3,
    )
    .unwrap();
    assert_eq!(keep.step(500, None), 1e-3);
    let mut decay = LrScheduler::new(
        LrSchedule::Step {
            step_size: 2,
            gamma: 0.5,
        },
        1.0,
    )
    .unwrap();
    assert_eq!(decay.step(0, None), 1.0);
    assert_eq!(decay.step(1, None), 0.5);
    assert_eq!(decay.step(3, None), 0.25);
}

/// Whatever a valid schedule and base rate, every rate it gives is a finite, non-negative
/// `f32` number, however long the run.
#[test]
fn every_valid_schedule_stays_in_the_f32_range() {
    let top = f64::from(f32::MAX);
    let schedules = [
        LrSchedule::Constant,
        LrSchedule::Step {
            step_size: 1,
            gamma: 1.0,
        },
        LrSchedule::Step {
            step_size: 1,
            gamma: 0.5,
        },
        LrSchedule::Cosine {
            t_max: 50,
            eta_min: top,
        },
        LrSchedule::Cosine {
            t_max: 50,
            eta_min: 0.0,
        },
        LrSchedule::ReduceOnPlateau {
            factor: 0.5,
            patience: 0,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: top,
        },
    ];
    for schedule in schedules {
        for base in [1e-3, top] {
            let mut s = LrScheduler::new(schedule.clone(), base).unwrap();
            for epoch in 0..2000 {
                let lr = s.step(epoch, Some(1.0));
                assert!(
                    lr >= 0.0 && (lr as f32).is_finite(),
                    "{schedule:?} from {base}: epoch {epoch} gives {lr}"
                );
            }
        }
    }
}
