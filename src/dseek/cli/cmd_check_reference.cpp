// `dseek check-reference MODEL_DIR REFERENCE.safetensors`: compare dseek's logits, loss,
// latent-cache decoding and greedy generation with a reference file made by transformers.
// Prints one JSON line; exit 0 when every tolerance holds, 1 when one is missed.
#include <cstdio>

#include "dseek/cli/command.h"
#include "dseek/io/safetensors.h"
#include "dseek/model/model.h"
#include "dseek/model/reference_check.h"

namespace {

const bool reg = dseek::cli::add_command(
    {"check-reference",
     "Compare dseek with a transformers reference file (logits, loss, generation)",
     [](CLI::App* sub, int* rc) {
       static std::string model_dir, ref_path;
       static dseek::ReferenceTolerances tol;
       static bool brief = false;
       sub->add_option("model", model_dir, "model folder (config.json + safetensors)")->required();
       sub->add_option("reference", ref_path,
                       "reference .safetensors (input_ids, logits, loss, generate.*)")
           ->required();
       sub->add_option("--tol-logits", tol.logits, "relative error allowed on logits")
           ->capture_default_str();
       sub->add_option("--tol-loss", tol.loss, "relative error allowed on the loss")
           ->capture_default_str();
       sub->add_option("--tol-grad", tol.grad, "relative error allowed on each gradient tensor")
           ->capture_default_str();
       sub->add_flag("--brief", brief, "one human-readable line instead of JSON");
       sub->callback([rc] {
         using namespace dseek;
         Model m = Model::load(model_dir);
         auto ref = SafeTensorsFile::open(ref_path);
         ReferenceReport r = check_reference(m, *ref, tol);
         if (brief) {
           std::printf(
               "%s logits %.1e  loss %.1e  cache %.1e  greedy %s  grads %s  -> %s\n",
               model_dir.c_str(), r.logits_rel_err, r.loss_rel_err, r.cache_rel_err,
               !r.generation_checked ? "n/a" : (r.generation_match ? "identical" : "DIFFERENT"),
               r.grads_checked
                   ? fmt::format("{:.1e} ({} tensors)", r.grad_max_rel_err, r.grads_compared)
                         .c_str()
                   : "n/a",
               r.ok ? "ok" : "FAILED");
         } else {
           nlohmann::json j = r.to_json();
           j["model"] = model_dir;
           std::printf("%s\n", j.dump().c_str());
         }
         *rc = r.ok ? 0 : 1;
       });
     },
     30});

}  // namespace
