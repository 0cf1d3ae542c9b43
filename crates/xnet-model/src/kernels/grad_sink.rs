//! A backward pass whose parameter gradients skip candle's accumulation.
//!
//! candle 0.11's `Tensor::backward` adds every gradient it receives into its store as
//! `zeros_like(arg) + grad`: a fresh zeroed tensor and a fresh sum, on the calling thread,
//! while the kernels' worker threads wait. For a convolution's weight, which feeds only
//! that convolution, both are pure overhead: XNet's 11.7 M parameters cost a 47 MB fill,
//! a 47 MB addition and two 47 MB allocations per step. [`backward`] installs a sink on
//! the calling thread; while it is there, the fast convolution ([`super::conv2d_fast`])
//! hands its weight and bias gradients to it instead of returning them to candle, when
//! those operands are variables (leaves: no gradient flows on from them), and [`backward`]
//! puts them into the returned store afterwards. The gradients are the same tensors
//! candle would have stored (it adds them to zeros, which is exact).

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{Result as CResult, Tensor};

thread_local! {
    /// `Some` while [`backward`] runs on this thread: the gradients handed over so far,
    /// one entry per variable.
    static SINK: RefCell<Option<Vec<(Tensor, Tensor)>>> = const { RefCell::new(None) };
}

/// Removes the sink when [`backward`] returns or unwinds, so a failed backward never
/// leaves one behind for an unrelated later pass.
struct SinkGuard;

impl Drop for SinkGuard {
    fn drop(&mut self) {
        SINK.with(|s| s.borrow_mut().take());
    }
}

/// `loss.backward()`, with the fast convolutions' weight and bias gradients delivered
/// straight into the returned store (see the module documentation). The store holds the
/// same gradients as `loss.backward()`'s; a variable that also gets gradient from other
/// operations gets the sum.
///
/// # Errors
/// Whatever `loss.backward()` returns.
///
/// # Examples
/// ```
/// use candle_core::{DType, Device, Tensor, Var};
/// let dev = Device::Cpu;
/// let x = Tensor::ones((1, 1, 4, 4), DType::F32, &dev)?;
/// let w = Var::ones((1, 1, 3, 3), DType::F32, &dev)?;
/// let y = xnet_model::kernels::conv2d_fast(&x, w.as_tensor(), None, 1, false)?;
/// let grads = xnet_model::kernels::backward(&y.sum_all()?)?;
/// let dw = grads.get(w.as_tensor()).expect("weight gradient");
/// // The centre tap sees all 16 pixels.
/// assert_eq!(dw.flatten_all()?.to_vec1::<f32>()?[4], 16.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn backward(loss: &Tensor) -> CResult<GradStore> {
    SINK.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let guard = SinkGuard;
    let grads = loss.backward();
    let sunk = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    let mut grads = grads?;
    for (var, grad) in sunk {
        let grad = match grads.remove(&var) {
            Some(other) => (other + grad)?,
            None => grad,
        };
        grads.insert(&var, grad);
    }
    Ok(grads)
}

/// Hands `grad`, the gradient of `operand` (if any), to the calling thread's sink when
/// there is one and `operand` is a variable; otherwise gives it back for candle to
/// accumulate.
pub(crate) fn offer(operand: &Tensor, grad: Option<Tensor>) -> CResult<Option<Tensor>> {
    let Some(grad) = grad else {
        return Ok(None);
    };
    if !operand.is_variable() {
        return Ok(Some(grad));
    }
    SINK.with(|s| {
        let mut sink = s.borrow_mut();
        let Some(sink) = sink.as_mut() else {
            return Ok(Some(grad));
        };
        match sink.iter_mut().find(|(v, _)| v.id() == operand.id()) {
            // A variable used by several convolutions (shared weights).
            Some((_, sum)) => *sum = (&*sum + &grad)?,
            None => sink.push((operand.clone(), grad)),
        }
        Ok(None)
    })
}
