from otel_celery_launch.cli import main

raise SystemExit(main())
