#include "config.h"

#include "staged.h"

const DeploymentRecordFormat staged_record_format = {
  .group = "staged",
  .time_key = "staged-at",
  .noun = "staged record",
  .remedy = " (remove it with 'stagehand unstage')",
};
