/*
 * `TOOL --version`, the same in every libpixel tool: the tool's name and
 * the library's version on stdout, status 0.  Asked as the only argument
 * (as `--help` is), so that it never clashes with a tool's own operands.
 */
#ifndef PIXEL_TOOLS_VERSION_H
#define PIXEL_TOOLS_VERSION_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <pixel/version.h>

/* The line each tool's --help ends with. */
#define TOOL_VERSION_HELP "--version (alone) shows the version.\n"

static inline bool tool_version_asked(int argc, char **argv, const char *name)
{
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("%s (libpixel) %s\n", name, PIXEL_VERSION_STRING);
        return true;
    }
    return false;
}

#endif
