"""The one place that turns Keras's string identifiers into objects.

Each kind of object (activations, initializers, regularizers, losses,
metrics, optimizers, learning-rate schedules, layers, callbacks) has one
``Registry``.  Its ``get`` accepts what Keras's ``<module>.get`` accepts:

* an object of the kind itself (an instance of ``base``), returned as is;
* a registered name, e.g. ``'rmsprop'`` or ``'RMSprop'`` (any case where the
  registry was made with ``ignore_case``): a registered class
  is instantiated with its defaults, anything else (a function) is returned;
* a config dict ``{'class_name': ..., 'config': {...}}``, as ``serialize``
  writes it;
* any other callable, where ``accept_callables`` is set (a custom loss or
  metric function).

Unknown names raise ``ValueError`` listing the valid ones; other types raise
``TypeError``.
"""


class Registry:
    """String identifiers of one kind of object, e.g. ``Registry('loss', Loss)``."""

    def __init__(self, kind, base=None, accept_callables=False, ignore_case=False):
        self.kind = kind
        self.base = base
        self.accept_callables = accept_callables
        self.ignore_case = ignore_case
        self._names = {}  # name as registered -> class or function

    def register(self, *aliases):
        """Decorator: registers a class or function under its ``__name__`` and
        under each alias (e.g. ``@LOSSES.register('mse')``)."""

        def decorate(obj):
            for name in (obj.__name__,) + aliases:
                self._names[name] = obj
            return obj

        return decorate

    def add(self, name, obj):
        """Registers ``obj`` under ``name``."""
        self._names[name] = obj

    def names(self):
        """The registered names, in registration order."""
        return list(self._names)

    def lookup(self, name, argument=None):
        """The registered class or function called ``name`` (in any case where
        the registry ``ignore_case``, as Keras's optimizers); ValueError when
        there is none."""
        found = self._names.get(name)
        if found is None and self.ignore_case and isinstance(name, str):
            found = next((obj for known, obj in self._names.items()
                          if known.lower() == name.lower()), None)
        if found is None:
            plural = self.kind + ("es" if self.kind.endswith("s") else "s")
            raise ValueError(f"unknown {argument or self.kind} {name!r}; valid {plural}: "
                             f"{', '.join(repr(known) for known in self._names)}")
        return found

    def get(self, identifier, argument=None):
        """The object ``identifier`` stands for (see the module docstring).
        ``argument``, the name of the argument it came in (e.g.
        'kernel_initializer'), is named by the errors."""
        if self.base is not None and isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            found = self.lookup(identifier, argument)
            return found() if isinstance(found, type) else found
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if self.accept_callables and callable(identifier) and not isinstance(identifier, type):
            return identifier
        raise TypeError(f"Could not interpret {argument or self.kind} identifier: "
                        f"{identifier!r} (give a "
                        f"name such as {next(iter(self._names), '...')!r} or a "
                        f"fastconv {self.kind} object)")

    def deserialize(self, config):
        """The object described by ``{'class_name': ..., 'config': {...}}``."""
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ValueError(f"a serialized {self.kind} must be a dict with a 'class_name', "
                             f"got {config!r}")
        found = self.lookup(config["class_name"])
        if not isinstance(found, type):
            return found
        arguments = config.get("config") or {}
        if not isinstance(arguments, dict):
            raise ValueError(f"the config of {self.kind} {config['class_name']!r} must be a "
                             f"dict, got {arguments!r}")
        if hasattr(found, "from_config"):
            return found.from_config(arguments)
        return found(**arguments)

    @staticmethod
    def serialize(obj):
        """``{'class_name': ..., 'config': ...}`` of an object with ``get_config``,
        or ``{'class_name': name}`` of a registered function."""
        if hasattr(obj, "get_config"):
            return {"class_name": type(obj).__name__, "config": obj.get_config()}
        return {"class_name": getattr(obj, "name", None) or obj.__name__, "config": None}
