// `dseek generate --model DIR --prompt TEXT`: stream a completion of the prompt, token by token,
// decoding with the MLA latent cache. --chat wraps the prompt in the model's chat template;
// --prompt-ids feeds token ids directly (for models without a tokenizer: ids are printed).
#include <cstdio>
#include <sstream>

#include "dseek/cli/command.h"
#include "dseek/cli/gen_common.h"
#include "dseek/tokenizer/chat_template.h"

namespace {

using namespace dseek;
using namespace dseek::cli;

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string tok;
  std::stringstream ss(s);
  while (std::getline(ss, tok, ',')) {
    size_t a = tok.find_first_not_of(" []"), b = tok.find_last_not_of(" []");
    if (a == std::string::npos) continue;
    tok = tok.substr(a, b - a + 1);
    try {
      size_t used = 0;
      long v = std::stol(tok, &used);
      DSEEK_CHECK(used == tok.size(), "--prompt-ids: '{}' is not an integer", tok);
      ids.push_back((int32_t)v);
    } catch (const std::logic_error&) {
      fail("--prompt-ids: '{}' is not an integer", tok);
    }
  }
  DSEEK_CHECK(!ids.empty(), "--prompt-ids: no token ids given");
  return ids;
}

struct Args {
  GenFlags g;
  std::string prompt, prompt_ids, system, chat_template = "deepseek-v3";
  bool chat = false, no_bos = false;
};

int run(const Args& a) {
  DSEEK_CHECK(a.prompt.empty() != a.prompt_ids.empty(),
              "give the prompt as --prompt TEXT or as --prompt-ids 1,2,3 (exactly one)");
  Model m = Model::load(a.g.model_dir);
  std::optional<Tokenizer> tok = load_tokenizer(a.g, /*required=*/a.prompt_ids.empty());
  std::vector<int32_t> ids;
  if (!a.prompt_ids.empty()) {
    ids = parse_ids(a.prompt_ids);
  } else if (a.chat) {
    std::vector<ChatMessage> msgs;
    if (!a.system.empty()) msgs.push_back({"system", a.system, std::nullopt});
    msgs.push_back({"user", a.prompt, std::nullopt});
    ids = tok->encode(chat_render(chat_template_from_name(a.chat_template), msgs, true));
  } else {
    ids = tok->encode(a.prompt);
    if (!a.no_bos && tok->bos_id() >= 0) ids.insert(ids.begin(), tok->bos_id());
  }
  if (tok && a.prompt_ids.empty()) std::fputs(a.chat ? "" : a.prompt.c_str(), stdout);
  LatentCache cache = m.new_cache();
  StreamResult r = generate_streaming(m, tok ? &*tok : nullptr, cache, ids, a.g, stdout);
  std::fputc('\n', stdout);
  if (a.g.stats) print_stats(r.stats);
  return 0;
}

const bool reg = add_command(
    {"generate", "Generate text from a prompt (streams tokens as they are produced)",
     [](CLI::App* sub, int* rc) {
       static Args a;
       add_gen_flags(sub, &a.g);
       sub->add_option("-p,--prompt", a.prompt, "prompt text");
       sub->add_option("--prompt-ids", a.prompt_ids, "prompt as token ids, e.g. 1,17,42");
       sub->add_flag("--chat", a.chat, "wrap the prompt in the chat template as a user turn");
       sub->add_option("--system", a.system, "system prompt (with --chat)");
       sub->add_option("--template", a.chat_template,
                       "chat template: deepseek-v3, deepseek-r1, deepseek-v3-0324")
           ->capture_default_str();
       sub->add_flag("--no-bos", a.no_bos, "do not prepend the BOS token to a plain prompt");
       sub->footer(
           "Examples:\n"
           "  dseek generate -m tests/fixtures/v3_tiny --prompt-ids 1,17,42 --greedy -n 16\n"
           "  dseek generate -m MODEL --chat --prompt 'What is 17*23?' --template deepseek-r1\n");
       sub->callback([rc] { *rc = run(a); });
     },
     10});

}  // namespace
