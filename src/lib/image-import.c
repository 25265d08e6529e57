/* Placeholder: being written (see image-import.h for the contract). */
#include "config.h"

#include "image-import.h"
