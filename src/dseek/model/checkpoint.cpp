#include "dseek/model/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dseek/io/safetensors.h"

namespace dseek {

namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void save_model_files(const std::string& dir, const Model& m,
                      const std::map<std::string, std::string>& metadata) {
  fs::create_directories(dir);
  // config.json, atomically
  {
    const std::string p = dir + "/config.json", tmp = p + ".tmp";
    {
      std::ofstream f(tmp);
      DSEEK_CHECK(f.good(), "cannot write {}", tmp);
      f << m.cfg.to_json().dump(2) << "\n";
      DSEEK_CHECK(f.good(), "cannot write {}", tmp);
    }
    fsync_path(tmp);
    DSEEK_CHECK(std::rename(tmp.c_str(), p.c_str()) == 0, "cannot rename {} to {}", tmp, p);
  }
  ModelWeights& w = const_cast<ModelWeights&>(m.w);  // model_params needs a mutable view
  std::vector<TensorToWrite> out;
  for (const ParamRef& p : model_params(m.cfg, w))
    out.push_back({p.name, DType::F32, p.shape, p.tensor->ptr()});
  for (int64_t k = 0; k < m.cfg.mtp_depth; k++) {
    std::vector<std::string> copies = mtp_shared_copy_names(m.cfg, k);
    out.push_back({copies[0], DType::F32, w.embed.shape, w.embed.ptr()});
    out.push_back({copies[1], DType::F32, w.head().shape, w.head().ptr()});
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  safetensors_write(dir + "/model.safetensors", out, meta);
}

void save_model_dir(const std::string& dir, const Model& m,
                    const std::map<std::string, std::string>& metadata,
                    const std::function<void(const std::string& staging)>& extra) {
  const std::string staging = dir + ".tmp", old = dir + ".old";
  fs::remove_all(staging);
  save_model_files(staging, m, metadata);
  if (extra) extra(staging);
  fsync_path(staging);
  // swap: dir -> dir.old, staging -> dir, drop dir.old. A crash in between leaves dir.old,
  // which load paths can fall back on (resume looks for it).
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(staging, dir);
  fsync_path(fs::path(dir).parent_path().string());
  fs::remove_all(old);
}

void save_model_dir_with_tokenizer(const std::string& dir, const Model& m,
                                   const std::map<std::string, std::string>& metadata,
                                   const std::string& tokenizer_path) {
  save_model_dir(dir, m, metadata, [&](const std::string& staging) {
    std::filesystem::copy_file(tokenizer_path, staging + "/tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing);
  });
}

std::string model_tokenizer_path(const std::string& explicit_path, const std::string& model_dir) {
  if (!explicit_path.empty()) return explicit_path;
  const std::string p = model_dir + "/tokenizer.json";
  DSEEK_CHECK(std::filesystem::exists(p), "{} has no tokenizer.json: pass --tokenizer", model_dir);
  return p;
}

}  // namespace dseek
