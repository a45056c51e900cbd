// pkm's subcommands. Each takes the arguments after its name and returns the exit code.
#pragma once

#include <string>
#include <vector>

namespace pkm::cli {

int GenerateCommand(const std::vector<std::string>& argv);
int ScoreCommand(const std::vector<std::string>& argv);
int InfoCommand(const std::vector<std::string>& argv);
int HealthCommand(const std::vector<std::string>& argv);
int TokenizeCommand(const std::vector<std::string>& argv);
int DetokenizeCommand(const std::vector<std::string>& argv);
int BenchCommand(const std::vector<std::string>& argv);

}  // namespace pkm::cli
