from bot.app.cli import main

if __name__ == "__main__":  # vLLM spawns its engine core: the entry point must be guarded
    main()
