// Logit distillation (forward KL to a teacher, Hinton et al. 2015; used by R1-style distilled
// students as an option next to training on the teacher's traces). Per trained row n (target
// >= 0), with temperature tau, q_S = softmax(s / tau), q_T = softmax(t / tau):
//   ce_n = -log softmax(s)[target]
//   kl_n = tau^2 * sum_v q_T (log q_T - log q_S)
//   l_n  = (1 - alpha) ce_n + alpha kl_n,          loss = scale * sum_n l_n
//   dl/ds = scale * [(1 - alpha)(softmax(s) - onehot) + alpha * tau * (q_S - q_T)]
// alpha = 0 is plain cross-entropy. Teacher and student must share the vocabulary.
#pragma once

#include <cstdint>

namespace dseek {

struct DistillStats {
  double ce_sum = 0, kl_sum = 0;  // sums over trained rows (unscaled)
  int64_t rows = 0;
};

// In place: student [N, V] holds the student's logits on entry and dloss/dlogits on return
// (0 on ignored rows). teacher [N, V] logits. Throws dseek::Error on a target >= V, alpha
// outside [0, 1] or tau <= 0.
DistillStats distill_forward_backward(float* student, const float* teacher, const int32_t* targets,
                                      int64_t N, int64_t V, float alpha, float tau, float scale);

}  // namespace dseek
