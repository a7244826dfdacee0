// The three transformers fixtures (tests/fixtures/README.md): logits, loss, greedy generation,
// latent-cache decoding and the gradient of every parameter, at the README's tolerances.
#include <gtest/gtest.h>

#include "dseek/io/safetensors.h"
#include "dseek/model/model.h"
#include "dseek/model/reference_check.h"

using namespace dseek;

class FixtureModel : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureModel, MatchesTransformers) {
  const std::string dir = std::string(DSEEK_FIXTURES) + "/" + GetParam();
  Model m = Model::load(dir);
  auto ref = SafeTensorsFile::open(dir + "/reference.safetensors");
  ReferenceReport r = check_reference(m, *ref);
  SCOPED_TRACE(r.to_json().dump());
  EXPECT_LT(r.logits_rel_err, 1e-5);
  EXPECT_LT(r.loss_rel_err, 1e-5);
  EXPECT_LT(r.cache_rel_err, 1e-5);
  ASSERT_TRUE(r.generation_checked);
  EXPECT_EQ(r.generated, r.generated_ref);
  ASSERT_TRUE(r.grads_checked);
  EXPECT_GT(r.grads_compared, 80);  // and check_reference requires every reference grad matched
  EXPECT_LT(r.grad_max_rel_err, 1e-4) << r.grad_worst;
  EXPECT_TRUE(r.ok);
  // a float32 forward should land near 6e-7 (SPEC §8b); anything above ~1e-6 is a bug
  EXPECT_LT(r.logits_rel_err, 2e-6);
}

INSTANTIATE_TEST_SUITE_P(Golden, FixtureModel,
                         ::testing::Values("v3_tiny", "v3_tiny_yarn_noqlora", "v2_tiny",
                                           "dseek_yarn_tied"));
