// The verifier behind `dseek check-reference`: compares what dseek computes with a reference
// file made by transformers (layout in tests/fixtures/README.md): input_ids [B, T], logits
// [B, T, V], loss [1], generate.prompt / generate.output (greedy, 16 new tokens).
// Relative error = ||ours - ref|| / ||ref|| (Frobenius). Also checks that decoding with the
// latent cache (absorbed MLA) reproduces the full forward's logits at every position.
// With grad.<name> tensors in the reference, the gradient of the loss for every parameter is
// computed by the hand-written backward and the largest relative error over tensors reported.
// Tolerances (the README's): logits 1e-5, loss 1e-5, cache vs full 1e-5, generation identical,
// every gradient tensor 1e-4.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dseek/model/model.h"

namespace dseek {

class SafeTensorsFile;

struct ReferenceTolerances {
  double logits = 1e-5, loss = 1e-5, cache = 1e-5, grad = 1e-4;
};

struct ReferenceReport {
  double logits_rel_err = -1, loss = 0, loss_ref = 0, loss_rel_err = -1, cache_rel_err = -1;
  bool generation_checked = false, generation_match = false;
  std::vector<int32_t> generated, generated_ref;
  bool grads_checked = false;
  int64_t grads_compared = 0;
  double grad_max_rel_err = -1;  // over every gradient tensor in the reference
  std::string grad_worst;        // the tensor where it occurs
  bool ok = false;
  nlohmann::json to_json() const;
};

double relative_error(const float* ours, const float* ref, int64_t n);

ReferenceReport check_reference(const Model& m, const SafeTensorsFile& ref,
                                const ReferenceTolerances& tol = {});

}  // namespace dseek
