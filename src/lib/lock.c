/* Placeholder: being written (see lock.h for the contract). */
#include "config.h"

#include "lock.h"
