// `dseek devices`: list the CUDA GPUs this build can use (or say why there are none).
#include <cstdio>

#include "dseek/cli/command.h"
#include "dseek/core/device.h"

namespace {

const bool reg = dseek::cli::add_command(
    {"devices", "List the CUDA devices this build can use",
     [](CLI::App* sub, int*) {
       sub->callback([] {
         std::string why;
         auto devs = dseek::cuda_devices(&why);
         std::printf("CUDA backend built: %s\n", dseek::cuda_built() ? "yes" : "no");
         if (devs.empty()) std::printf("no devices: %s\n", why.c_str());
         for (const auto& d : devs)
           std::printf("  cuda:%d  %s  sm_%d%d  %d SMs  %.1f GiB\n", d.index, d.name.c_str(),
                       d.cc_major, d.cc_minor, d.sm_count, d.memory_bytes / 1073741824.0);
       });
     },
     90});

}  // namespace
