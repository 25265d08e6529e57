/* Placeholder: being written (see unit-control.h for the contract). */
#include "config.h"

#include "unit-control.h"
