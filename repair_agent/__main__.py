from .cli import app

if __name__ == "__main__":  # `python -m repair_agent`; importing this module runs nothing
    app()
