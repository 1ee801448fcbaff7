from .lpn import LPN
