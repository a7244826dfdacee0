// `dseek chat --model DIR`: an interactive loop with the model's chat template. Each turn
// renders the whole conversation, and only the tokens that extend what is already in the latent
// cache are fed (the V3 template is append-only; R1 drops past reasoning, which forces a
// re-prefill). Commands: /reset clears the conversation, /quit (or end of input) exits.
#include <cstdio>
#include <iostream>

#include "dseek/cli/command.h"
#include "dseek/cli/gen_common.h"
#include "dseek/tokenizer/chat_template.h"

namespace {

using namespace dseek;
using namespace dseek::cli;

struct Args {
  GenFlags g;
  std::string system, chat_template = "deepseek-v3";
};

int run(const Args& a) {
  Model m = Model::load(a.g.model_dir);
  Tokenizer tok = *load_tokenizer(a.g, /*required=*/true);
  const ChatTemplate tmpl = chat_template_from_name(a.chat_template);
  std::vector<ChatMessage> msgs;
  if (!a.system.empty()) msgs.push_back({"system", a.system, std::nullopt});
  LatentCache cache = m.new_cache();
  std::vector<int32_t> cached;  // the tokens whose c_kv / k_pe are in the cache
  std::fprintf(stderr, "[chat] %s, template %s. /reset clears, /quit exits.\n",
               a.g.model_dir.c_str(), chat_template_name(tmpl));
  std::string line;
  while (true) {
    std::fputs("\n> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line) || line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      msgs.resize(a.system.empty() ? 0 : 1);
      cache.clear();
      cached.clear();
      std::fputs("(conversation cleared)\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    msgs.push_back({"user", line, std::nullopt});
    std::vector<int32_t> ids = tok.encode(chat_render(tmpl, msgs, true));
    size_t common = 0;
    while (common < cached.size() && common < ids.size() && cached[common] == ids[common]) common++;
    if (common == ids.size()) common--;  // always feed at least one token
    cache.truncate((int64_t)common);
    cached.resize(common);
    std::vector<int32_t> fresh(ids.begin() + (int64_t)common, ids.end());
    StreamResult r = generate_streaming(m, &tok, cache, fresh, a.g, stdout);
    std::fputc('\n', stdout);
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    if (!r.ids.empty()) cached.insert(cached.end(), r.ids.begin(), r.ids.end() - 1);
    msgs.push_back({"assistant", r.text, std::nullopt});
    if (a.g.stats) print_stats(r.stats);
  }
  return 0;
}

const bool reg = add_command({"chat", "Interactive chat with the model's chat template",
                              [](CLI::App* sub, int* rc) {
                                static Args a;
                                add_gen_flags(sub, &a.g);
                                sub->add_option("--system", a.system, "system prompt");
                                sub->add_option("--template", a.chat_template,
                                                "deepseek-v3, deepseek-r1, deepseek-v3-0324")
                                    ->capture_default_str();
                                sub->callback([rc] { *rc = run(a); });
                              },
                              11});

}  // namespace
