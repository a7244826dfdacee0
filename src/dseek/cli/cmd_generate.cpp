// `dseek generate --model DIR --prompt TEXT`: stream a completion of the prompt, token by token,
// decoding with the MLA latent cache. --chat wraps the prompt in the model's chat template;
// --prompt-ids feeds token ids directly (for models without a tokenizer: ids are printed).
// --speculative mtp drafts tokens with the model's MTP module and verifies them with the main
// model (infer/speculative.h), then prints the acceptance rate and tokens/s to stderr.
#include <algorithm>
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
  std::string speculative;  // "" (off) or "mtp"
  int64_t draft_tokens = 1;
  bool chat = false, no_bos = false;
};

void print_speculative_stats(const GenerateStats& s, int64_t k) {
  std::fprintf(stderr,
               "[speculative] mtp, %ld draft%s per step: %ld of %ld drafts accepted (%.1f%%), "
               "%.2f tokens per main-model forward, %ld tokens in %.3f s (%.1f tok/s)\n",
               (long)k, k == 1 ? "" : "s", (long)s.accepted_tokens, (long)s.draft_tokens,
               s.draft_tokens > 0 ? 100.0 * s.accepted_tokens / s.draft_tokens : 0.0,
               s.verify_steps > 0 ? (double)(s.new_tokens - 1) / s.verify_steps : 0.0,
               (long)s.new_tokens, s.decode_s,
               s.decode_s > 0 ? std::max<int64_t>(0, s.new_tokens - 1) / s.decode_s : 0.0);
}

int run(const Args& a) {
  DSEEK_CHECK(a.prompt.empty() != a.prompt_ids.empty(),
              "give the prompt as --prompt TEXT or as --prompt-ids 1,2,3 (exactly one)");
  DSEEK_CHECK(a.speculative.empty() || a.speculative == "mtp",
              "--speculative: unknown method '{}' (available: mtp)", a.speculative);
  DSEEK_CHECK(a.draft_tokens >= 1 && a.draft_tokens <= 16,
              "--draft-tokens must be in [1, 16], got {}", a.draft_tokens);
  Model m = Model::load(a.g.model_dir);
  GenFlags g = a.g;
  if (!a.speculative.empty()) {
    DSEEK_CHECK(m.cfg.mtp_depth > 0,
                "--speculative mtp: {} has no MTP module (no model.layers.{}.eh_proj.weight); "
                "train one with mtp.depth >= 1",
                a.g.model_dir, m.cfg.num_hidden_layers);
    g.mtp_draft_tokens = a.draft_tokens;
  }
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
  StreamResult r = generate_streaming(m, tok ? &*tok : nullptr, cache, ids, g, stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (a.g.stats) print_stats(r.stats);
  if (!a.speculative.empty()) print_speculative_stats(r.stats, a.draft_tokens);
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
       sub->add_option("--speculative", a.speculative,
                       "speculative decoding: mtp = draft with the model's MTP module, verify "
                       "with the main model (greedy: the same tokens; sampling: the same "
                       "distribution); prints the acceptance rate and tokens/s");
       sub->add_option("--draft-tokens", a.draft_tokens,
                       "with --speculative: tokens drafted per step (the MTP module chained on "
                       "its own output after the first)")
           ->capture_default_str();
       sub->footer(
           "Examples:\n"
           "  dseek generate -m tests/fixtures/v3_tiny --prompt-ids 1,17,42 --greedy -n 16\n"
           "  dseek generate -m MODEL --chat --prompt 'What is 17*23?' --template deepseek-r1\n"
           "  dseek generate -m runs/tiny/checkpoint --prompt 'And the' --greedy --speculative "
           "mtp\n");
       sub->callback([rc] { *rc = run(a); });
     },
     10});

}  // namespace
