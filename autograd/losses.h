// Training losses, written as compositions of the differentiable ops in autograd/ops.h: their VJPs
// and JVPs (and second derivatives) come from the primitives, with no hand-written backward.
// Each checks its inputs (shapes, dtypes, index ranges) and throws cortex::Error naming the loss.
#pragma once
#include "autograd/ops.h"

namespace cortex {

// How per-element (or per-sample, per-target) losses become the result:
// None keeps them (shape documented per loss), Mean averages them, Sum adds them (0-dim results).
enum class Reduction { None, Mean, Sum };

// (pred - target)^2. pred and target: one float dtype, one shape; None keeps that shape.
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);

// |pred - target| (derivative 0 where they are equal, as PyTorch). Shapes as mse_loss.
Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);

// Poisson negative log-likelihood of counts `target` under rates `pred_rate` (not log-rates), as
// torch.nn.PoissonNLLLoss(log_input=False):
//   loss = pred_rate - target * log(pred_rate + eps)
// and, when `full`, plus the Stirling term target*log(target) - target + 0.5*log(2*pi*target)
// where target > 1 (0 elsewhere). Shapes as mse_loss.
Tensor poisson_nll_loss(const Tensor& pred_rate, const Tensor& target, double eps = 1e-8, bool full = false,
                        Reduction reduction = Reduction::Mean);

// Negative Pearson correlation between pred and target along `dim` (the samples), one r per
// remaining index (the targets: voxels, neurons), the loss encoding models train with:
//   r = mean(pc * tc) / (sqrt(mean(pc^2) + eps) * sqrt(mean(tc^2) + eps)),  pc = pred - mean(pred)
// along dim, likewise tc. eps is a floor under each variance: a constant column gives r = 0 and
// finite derivatives, never NaN. pred and target: one float dtype, one shape, at least 2 samples
// along dim. None returns -r with dim removed; Mean is the mean over targets of -r.
Tensor neg_pearson(const Tensor& pred, const Tensor& target, int64_t dim = 0, double eps = 1e-8,
                   Reduction reduction = Reduction::Mean);

// InfoNCE for contrastive objectives. a, b: (N, D), row i of a and row i of b are a positive pair,
// every other row of b a negative for row i of a. Rows are L2-normalised (x / max(|x|, 1e-12), as
// torch.nn.functional.normalize), logits = a_n b_n^T / temperature (N, N), and each row's loss is
// the cross-entropy of its positive: -log_softmax(logits, 1)[i, i]. `symmetric` averages it with
// the b -> a direction (-log_softmax(logits, 0)[i, i]), as CLIP. None returns the (N) per-pair losses.
Tensor info_nce(const Tensor& a, const Tensor& b, double temperature = 0.1, bool symmetric = true,
                Reduction reduction = Reduction::Mean);

// Cross-entropy of class logits against int64 class indices, as torch.nn.functional.cross_entropy:
// logits (N, C) or (N, C, d1, ...) with target (N) or (N, d1, ...), or logits (C) with a 0-dim target.
// With label smoothing s in [0, 1] the target distribution is (1 - s) one-hot + s / C uniform:
//   loss = (1 - s) * (-log p[y]) + s * mean_c(-log p[c]),  log p = log_softmax(logits, class dim).
// Every index must lie in [0, C). None returns target's shape; Mean averages over all of it.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::Mean);

}  // namespace cortex
