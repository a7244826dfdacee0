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
       sub->add_option("model", model_dir, "model folder (config.json + safetensors)")->required();
       sub->add_option("reference", ref_path,
                       "reference .safetensors (input_ids, logits, loss, generate.*)")
           ->required();
       sub->add_option("--tol-logits", tol.logits, "relative error allowed on logits")
           ->capture_default_str();
       sub->add_option("--tol-loss", tol.loss, "relative error allowed on the loss")
           ->capture_default_str();
       sub->callback([rc] {
         using namespace dseek;
         Model m = Model::load(model_dir);
         auto ref = SafeTensorsFile::open(ref_path);
         ReferenceReport r = check_reference(m, *ref, tol);
         nlohmann::json j = r.to_json();
         j["model"] = model_dir;
         std::printf("%s\n", j.dump().c_str());
         *rc = r.ok ? 0 : 1;
       });
     },
     30});

}  // namespace
