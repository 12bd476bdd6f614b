"""Models at new widths: width files, timm-native build specs, :func:`create_model` and export
to a module with timm entrypoints.
"""

from widthsearch.models.export import (
    check_module_path,
    export,
    module_source,
)
from widthsearch.models.factory import (
    create_model,
)
from widthsearch.models.native import (
    SPEC_VERSION,
    build_spec,
)
from widthsearch.models.widthfile import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    WidthFile,
    WidthFileError,
    load_width_file,
    save_width_file,
    width_file_dict,
    write_json,
)

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "SPEC_VERSION",
    "WidthFile",
    "WidthFileError",
    "build_spec",
    "check_module_path",
    "create_model",
    "export",
    "load_width_file",
    "module_source",
    "save_width_file",
    "width_file_dict",
    "write_json",
]
