// CompletionText implementation: the contract is in completion_text.h.
#include "dseek/serve/completion_text.h"

#include "dseek/core/error.h"

namespace dseek::serve {

CompletionText::CompletionText(const Tokenizer* tok, std::vector<std::string> stops, bool reasoning)
    : tok_(tok), stops_(std::move(stops)), split_(reasoning && tok), reasoning_(reasoning) {
  DSEEK_CHECK(tok_ || stops_.stops().empty(), "stop strings need a tokenizer");
  if (tok_) {
    dec_.emplace(*tok_, /*skip_special=*/true);
    if (reasoning_) think_end_id_ = tok_->token_id("</think>");
  }
}

void CompletionText::add_text(const std::string& text, TextDelta* d) {
  if (text.empty()) return;
  StopStringsStep st = stops_.feed(text);
  ReasoningPiece p = split_.feed(st.text);
  d->reasoning += p.reasoning;
  d->content += p.content;
  if (st.stopped) d->stop_hit = true;
}

TextDelta CompletionText::feed(const std::vector<int32_t>& ids) {
  TextDelta d;
  for (int32_t id : ids) {
    if (stops_.stopped()) break;
    consumed_++;
    d.ids.push_back(id);
    if (!tok_) continue;
    if (id == think_end_id_) {
      std::string text = dec_->flush();
      text += "</think>";
      add_text(text, &d);
    } else {
      add_text(dec_->feed(id), &d);
    }
  }
  return d;
}

TextDelta CompletionText::finish() {
  TextDelta d;
  if (!tok_) return d;
  if (!stops_.stopped()) {
    add_text(dec_->flush(), &d);
    if (!stops_.stopped()) {
      ReasoningPiece p = split_.feed(stops_.finish());
      d.reasoning += p.reasoning;
      d.content += p.content;
    }
  }
  ReasoningPiece p = split_.finish();
  d.reasoning += p.reasoning;
  d.content += p.content;
  return d;
}

}  // namespace dseek::serve
