/* Placeholder: being written (see mount-query.h for the contract). */
#include "config.h"

#include "mount-query.h"
