#!/usr/bin/env bash
# DeepSeek-R1's stage 3 and its distillation, at CPU scale, on a finished scripts/r1_pipeline.sh run:
#   A. rejection sampling: the cold-start model (RUN/sft/final) samples N answers per train-split
#      prompt, the checker keeps the correct ones (`dseek sample`), and the same model is
#      fine-tuned on what it kept (`dseek sft`). Reported: held-out pass@1 before and after.
#   B. distillation: the RL'd teacher (RUN/grpo/final) writes worked answers for train-split
#      prompts (`dseek sample`, correct ones kept); a smaller student (recipes/tiny-student.json,
#      pretrained on the same data) is fine-tuned three ways on the same prompts:
#        traces      the teacher's reasoning traces (R1's distilled models)
#        answers     the same prompts and answers, reasoning removed (<think></think>): the
#                    student without the teacher's traces
#        traces+KL   traces plus logit distillation (forward KL to the teacher, `--teacher`)
#      Reported: held-out pass@1 and format of each (200 test-split problems, greedy).
# Usage: scripts/r1_stage3.sh --run runs/r1/seed0 [--seed N]
# env: DSEEK (binary, default ./build/dseek), STUDENT_STEPS (student pretraining, default 1000),
#      RS_N / DISTILL_N (prompts, default 2000 / 2000).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=""
SEED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --run) RUN="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    *) echo "usage: $0 --run DIR [--seed N]" >&2; exit 2 ;;
  esac
done
D=${DSEEK:-./build/dseek}
[ -n "$RUN" ] || { echo "usage: $0 --run DIR [--seed N]" >&2; exit 2; }
for m in "$RUN/sft/final" "$RUN/grpo/final"; do
  [ -s "$m/model.safetensors" ] || { echo "[stage3] $m missing: run scripts/r1_pipeline.sh first" >&2; exit 1; }
done
TOK=data/r1/tokenizer.json
DATA=data/r1/shards
[ -s "$DATA/meta.json" ] || { echo "[stage3] $DATA missing: run scripts/r1_pipeline.sh first" >&2; exit 1; }
T=add
EV=(--task $T --digits 2 -n 200 --show 0)
OUT=$RUN/stage3
mkdir -p "$OUT"
pass1() { "$D" eval -m "$1" "${EV[@]}" 2>/dev/null | tail -1; }
field() { sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/" <<<"$1"; }
row() { local j; j=$(pass1 "$2"); printf '| %-44s | %6.1f%% | %6.1f%% |\n' "$1" \
  "$(awk -v x="$(field "$j" pass1)" 'BEGIN{print 100*x}')" \
  "$(awk -v x="$(field "$j" format)" 'BEGIN{print 100*x}')" | tee -a "$OUT/table.md"; }

: >"$OUT/table.md"
printf '| model | pass@1 | format |\n|---|---:|---:|\n' | tee -a "$OUT/table.md"

# ---- A. rejection sampling -> SFT ------------------------------------------------------------
echo "== [stage3] A. rejection sampling from $RUN/sft/final (${RS_N:-2000} prompts x 4 samples, T=0.7)"
"$D" sample -m "$RUN/sft/final" --task $T --digits 2 -n "${RS_N:-2000}" --samples 4 --keep 1 \
  --temperature 0.7 --seed $((SEED + 300)) -o "$OUT/rs.jsonl"
"$D" sft -m "$RUN/sft/final" --data "$OUT/rs.jsonl" --out "$OUT/rs_sft" --epochs 1 --lr 3e-4 \
  --seed "$SEED" >/dev/null
row "cold start (RUN/sft/final)" "$RUN/sft/final"
row "cold start + rejection-sampled SFT" "$OUT/rs_sft/final"

# ---- B. distillation into a smaller student --------------------------------------------------
echo "== [stage3] B. student pretraining (recipes/tiny-student.json, ${STUDENT_STEPS:-1000} steps)"
if [ ! -s "$OUT/student/checkpoint/model.safetensors" ]; then
  "$D" train --config recipes/tiny-student.json --data "$DATA" --tokenizer "$TOK" \
    --out "$OUT/student" --seed "$SEED" --steps "${STUDENT_STEPS:-1000}" --time-limit 3600 \
    >/dev/null
fi
echo "== [stage3] teacher traces from $RUN/grpo/final (${DISTILL_N:-2000} prompts)"
"$D" sample -m "$RUN/grpo/final" --task $T --digits 2 -n "${DISTILL_N:-2000}" --samples 2 \
  --keep 1 --temperature 0.7 --seed $((SEED + 400)) -o "$OUT/traces.jsonl"
# The same prompts and answers without the reasoning.
sed -E 's#<think>[^<]*</think>#<think></think>#' "$OUT/traces.jsonl" >"$OUT/answers.jsonl"
S=(--epochs 3 --lr 1e-3 --seed "$SEED")
"$D" sft -m "$OUT/student/checkpoint" --data "$OUT/traces.jsonl" --out "$OUT/st_traces" "${S[@]}" >/dev/null
"$D" sft -m "$OUT/student/checkpoint" --data "$OUT/answers.jsonl" --out "$OUT/st_answers" "${S[@]}" >/dev/null
"$D" sft -m "$OUT/student/checkpoint" --data "$OUT/traces.jsonl" --out "$OUT/st_traces_kl" "${S[@]}" \
  --teacher "$RUN/grpo/final" --distill-alpha 0.5 >/dev/null
row "teacher (RUN/grpo/final)" "$RUN/grpo/final"
row "student + teacher traces (distilled)" "$OUT/st_traces/final"
row "student + answers only (no traces)" "$OUT/st_answers/final"
row "student + traces + logit KL" "$OUT/st_traces_kl/final"
echo "[stage3] done: $OUT/table.md"
