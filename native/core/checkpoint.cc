#include "core/checkpoint.h"

#include <torch/serialize.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace stenosis {
namespace {

using GenericDict = c10::impl::GenericDict;

GenericDict NewDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

const c10::IValue& Require(const GenericDict& dict, const std::string& key, const std::string& path) {
  auto found = dict.find(key);
  if (found == dict.end()) {
    throw Error("ERR_CHECKPOINT",
                "checkpoint '" + path + "' has no '" + key + "' entry: the file is damaged");
  }
  return found->value();
}

}  // namespace

void WriteFileAtomically(const std::string& path, const std::vector<char>& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path() && !fs::exists(target.parent_path())) {
    throw Error("ERR_OUTPUT",
                "cannot write '" + path + "': folder '" + target.parent_path().string() + "' does not exist");
  }
  const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("ERR_OUTPUT", "cannot write '" + temporary + "': " + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      throw Error("ERR_OUTPUT", "writing '" + temporary + "' failed (disk full?)");
    }
  }
  std::error_code rename_error;
  fs::rename(temporary, target, rename_error);
  if (rename_error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw Error("ERR_OUTPUT",
                "cannot rename '" + temporary + "' to '" + path + "': " + rename_error.message());
  }
}

void WriteCheckpoint(const std::string& path, const CheckpointContents& contents) {
  GenericDict root = NewDict();
  root.insert("format", std::string(kCheckpointFormat));
  root.insert("version", kCheckpointVersion);
  root.insert("metadata", contents.metadata_json);

  GenericDict model = NewDict();
  for (const auto& [name, tensor] : contents.model)
    model.insert(name, tensor.detach().to(torch::kCPU).contiguous());
  root.insert("model", model);

  GenericDict state = NewDict();
  for (const auto& moment : contents.optimizer) {
    GenericDict entry = NewDict();
    entry.insert("step", moment.step);
    entry.insert("exp_avg", moment.exp_avg.detach().to(torch::kCPU).contiguous());
    entry.insert("exp_avg_sq", moment.exp_avg_sq.detach().to(torch::kCPU).contiguous());
    state.insert(moment.name, entry);
  }
  GenericDict optimizer = NewDict();
  optimizer.insert("kind", std::string("adamw"));
  optimizer.insert("steps", contents.steps);
  optimizer.insert("lr", contents.learning_rate);
  optimizer.insert("state", state);
  root.insert("optimizer", optimizer);

  GenericDict extra = NewDict();
  for (const auto& [key, value] : contents.extra) extra.insert(key, value);
  root.insert("extra", extra);

  WriteFileAtomically(path, torch::pickle_save(c10::IValue(root)));
}

CheckpointContents ReadCheckpoint(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' does not exist");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' could not be read: " + DescribeException(e));
  }
  if (!value.isGenericDict()) {
    throw Error("ERR_CHECKPOINT", "'" + path + "' is not a lumbar-stenosis checkpoint (expected a dict)");
  }
  GenericDict root = value.toGenericDict();
  const auto format = root.find("format");
  if (format == root.end() || !format->value().isString() ||
      format->value().toStringRef() != kCheckpointFormat) {
    throw Error("ERR_CHECKPOINT", "'" + path + "' is not a lumbar-stenosis checkpoint (no format marker)");
  }
  const int64_t version = Require(root, "version", path).toInt();
  if (version > kCheckpointVersion) {
    throw Error("ERR_CHECKPOINT", "checkpoint '" + path + "' has format version " + std::to_string(version) +
                                      "; this build reads up to version " +
                                      std::to_string(kCheckpointVersion) + ": upgrade the package");
  }
  CheckpointContents contents;
  contents.metadata_json = Require(root, "metadata", path).toStringRef();
  for (const auto& item : Require(root, "model", path).toGenericDict()) {
    contents.model.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  GenericDict optimizer = Require(root, "optimizer", path).toGenericDict();
  contents.steps = Require(optimizer, "steps", path).toInt();
  contents.learning_rate = Require(optimizer, "lr", path).toDouble();
  for (const auto& item : Require(optimizer, "state", path).toGenericDict()) {
    GenericDict entry = item.value().toGenericDict();
    contents.optimizer.push_back({item.key().toStringRef(), Require(entry, "step", path).toInt(),
                                  Require(entry, "exp_avg", path).toTensor(),
                                  Require(entry, "exp_avg_sq", path).toTensor()});
  }
  auto extra = root.find("extra");
  if (extra != root.end() && extra->value().isGenericDict()) {
    for (const auto& item : extra->value().toGenericDict()) {
      if (item.value().isString()) contents.extra[item.key().toStringRef()] = item.value().toStringRef();
    }
  }
  return contents;
}

}  // namespace stenosis
