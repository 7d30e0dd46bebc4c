"""`python -m videogn fit -c configs/i3d_gn.yaml` is the same as `lightning fit ...` and `videogn fit ...`."""

from videogn.cli import main

if __name__ == "__main__":
    main()
